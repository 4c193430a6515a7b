"""``labrador-trainer model prepare|fetch|export``: the CLI of ``models.py`` (GGUF to an HF directory), ``fetch.py``
(hf://, s3:// or oci:// into the workspace cache) and ``export.py`` (a promoted model out to s3://, oci://, hf://)."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger("labrador_trainer")  # the name these messages have always carried


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = sub.add_parser("model", help="model utilities")
    msub = m.add_subparsers(dest="model_command", required=True)
    prep = msub.add_parser("prepare", help="dequantise a GGUF file into an HF directory (safetensors)")
    prep.add_argument("--gguf", required=True)
    prep.add_argument("--out", required=True)
    prep.add_argument("--layers", type=int, default=None, help="keep only the first N decoder layers")
    prep.set_defaults(func=run_prepare)
    fetch = msub.add_parser("fetch", help="fetch an hf://, s3:// or oci:// model into a directory, once")
    fetch.add_argument("--uri", required=True)
    fetch.add_argument("--dest", required=True)
    fetch.add_argument("--endpoint", default=None, help="S3 endpoint URL (non-AWS stores) or Hub mirror URL")
    fetch.add_argument(
        "--registry-config",
        default=None,
        help="oci://: a docker config JSON (a dockerconfigjson Secret's file) holding the registry's login; only "
        "its entry for the reference's host is used, and sent to that host only, over https",
    )
    fetch.set_defaults(func=run_fetch)
    export = msub.add_parser("export", help="publish a model directory to an s3://, oci:// or hf:// URI")
    export.add_argument("--src", required=True, help="the model directory")
    export.add_argument("--uri", required=True)
    export.add_argument("--endpoint", default=None, help="S3 endpoint URL (non-AWS stores) or Hub URL")
    export.add_argument(
        "--registry-config",
        default=None,
        help="oci://: a docker config JSON holding the registry's login (the same rules as model fetch)",
    )
    export.add_argument("--termination-log", default=None, help="write the JSON summary (<= 4 KiB) here")
    export.set_defaults(func=run_export)


def run_prepare(args: argparse.Namespace) -> int:
    from labrador_trainer.models import prepare_model

    print(prepare_model(args.gguf, args.out, layers=args.layers))
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Exit 2 for a URI that can never work, 1 for a fetch that failed (the pod's retry may succeed)."""
    from labrador_trainer.fetch import FetchError, SourceError, fetch

    try:
        print(fetch(args.uri, args.dest, endpoint=args.endpoint, registry_config=args.registry_config))
    except SourceError as e:
        log.error("%s", e)
        return 2
    except FetchError as e:
        log.error("fetch failed: %s", e)
        return 1
    return 0


def _termination(path: str | None, summary: dict[str, object]) -> None:
    """Written in place, not renamed: Kubernetes bind-mounts the termination log file."""
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(summary)[:4096])


def run_export(args: argparse.Namespace) -> int:
    """Exit 2 for a destination or source that can never work, 1 for a push that failed (a retry may succeed)."""
    from labrador_trainer.export import export
    from labrador_trainer.fetch import FetchError, SourceError

    try:
        done = export(args.src, args.uri, endpoint=args.endpoint, registry_config=args.registry_config)
    except SourceError as e:
        log.error("%s", e)
        _termination(args.termination_log, {"status": "Failed", "reason": "InvalidInput", "message": str(e)[:2000]})
        return 2
    except FetchError as e:
        log.error("export failed: %s", e)
        _termination(args.termination_log, {"status": "Failed", "reason": "Error", "message": str(e)[:2000]})
        return 1
    print(json.dumps({**done.summary(), "checksums": done.checksums}))
    _termination(args.termination_log, done.summary())
    return 0
