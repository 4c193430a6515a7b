"""``labrador-trainer model prepare|fetch``: the CLI of ``models.py`` (GGUF to an HF directory) and ``fetch.py``
(hf://, s3:// or oci:// into the workspace cache)."""

from __future__ import annotations

import argparse
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
