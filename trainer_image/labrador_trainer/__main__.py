"""``python -m labrador_trainer <command>``: use the shared CLI when present, else the train CLI alone."""

from __future__ import annotations

import sys

try:
    from labrador_trainer.cli import main
except ImportError:
    from labrador_trainer.train.cli import main

sys.exit(main())
