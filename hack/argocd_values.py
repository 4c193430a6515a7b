"""Print the Argo CD Helm values that install Labrador's health check for each kind (docs/argocd.md)."""

from __future__ import annotations

from pathlib import Path

import yaml

KINDS = ("Taxonomy", "SyntheticDataJob", "FineTuneJob")


def values(script: str) -> dict[str, object]:
    return {"configs": {"cm": {f"resource.customizations.health.labrador.dev_{k}": script for k in KINDS}}}


if __name__ == "__main__":
    lua = (Path(__file__).resolve().parent.parent / "charts" / "labrador" / "argocd" / "health.lua").read_text()
    print(yaml.safe_dump(values(lua), sort_keys=False, width=120))
