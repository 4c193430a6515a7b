"""kopf handlers. Importing this package registers every index, handler and setting.

Admission webhooks are registered only when a webhook port is configured (LABRADOR_WEBHOOK_PORT): kopf refuses to
start with admission handlers and no server.
"""

import os

# startup first: kopf runs startup handlers in registration order, and configure() (settings, peering) must run
# before the sampler's start_sampler()
from labrador_operator.handlers import startup  # noqa: F401

# isort: split
from labrador_operator.handlers import events, finetune, sampler, sdg, taxonomy  # noqa: F401

if os.environ.get("LABRADOR_WEBHOOK_PORT", "0") not in ("", "0"):
    from labrador_operator.handlers import admission  # noqa: F401
