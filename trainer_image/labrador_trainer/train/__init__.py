"""``labrador-trainer train``: multi-phase fine-tuning with padding-free packing, checkpoints and resume."""
