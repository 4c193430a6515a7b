"""kopf handlers. Importing this package registers every index, handler and setting.

Admission webhooks are registered only when a webhook port is configured (LABRADOR_WEBHOOK_PORT): kopf refuses to
start with admission handlers and no server.
"""

import os

from labrador_operator.handlers import finetune, indexes, sdg, startup, taxonomy  # noqa: F401

if os.environ.get("LABRADOR_WEBHOOK_PORT", "0") not in ("", "0"):
    from labrador_operator.handlers import admission  # noqa: F401
