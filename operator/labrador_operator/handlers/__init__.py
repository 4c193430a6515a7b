"""kopf handlers. Importing this package registers every index, handler and setting."""

from labrador_operator.handlers import finetune, indexes, startup  # noqa: F401
