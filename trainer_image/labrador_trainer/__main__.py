"""``python -m labrador_trainer <command>``: the ``labrador-trainer`` command line (torchrun starts workers so)."""

from __future__ import annotations

import sys

from labrador_trainer.cli import main

sys.exit(main())
