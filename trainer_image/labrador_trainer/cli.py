"""``labrador-trainer``: the workloads' one command line (also ``python -m labrador_trainer``, as torchrun starts it).

Each stage registers its own subcommands beside the code they run, with ``add_parser(subparsers)``:
``taxonomy/cli.py`` (taxonomy validate, sync), ``sdg/cli.py`` (generate, mix), ``evaluate/cli.py`` (evaluate),
``train/cli.py`` (train), ``model_cli.py`` (model prepare, fetch, export, for ``models.py``, ``fetch.py`` and
``export.py``) and ``serving.py`` (serve, chat). Every command sets ``func``, the function that runs it; ``main``
returns its exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from labrador_trainer import model_cli, serving
from labrador_trainer.evaluate import cli as evaluate_cli
from labrador_trainer.sdg import cli as sdg_cli
from labrador_trainer.taxonomy import cli as taxonomy_cli
from labrador_trainer.train import cli as train_cli

#: ``--help``'s description
DESCRIPTION = (
    "``labrador-trainer``: one command per stage — ``taxonomy`` (validate, sync), ``generate``, ``mix``, ``train``,\n"
    "``evaluate``, ``model`` (prepare, fetch, export), ``serve`` (a model over vLLM's OpenAI API) and ``chat``\n"
    "(talk to such a server, or compare two)."
)

#: in ``--help``'s order
STAGES = (taxonomy_cli, sdg_cli, evaluate_cli, train_cli, model_cli, serving)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labrador-trainer", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        stage.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
