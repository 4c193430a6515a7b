"""kopf handlers. Importing this package registers every index, handler and setting."""

from labrador_operator.handlers import finetune, indexes, sdg, startup, taxonomy  # noqa: F401
