"""FineTuneJob watch events: cache the object, name it for a reconcile (controller/finetune.py decides and applies).

async: kopf frees each event's body as soon as the handler returns; the cache is updated and the work named at
once, and the reconciles (API writes) run in the runtime's work queue threads."""

from __future__ import annotations

from typing import Any

import kopf

from labrador_operator.api.finetune import PLURAL
from labrador_operator.constants import API_GROUP, API_VERSION
from labrador_operator.controller.runtime import Runtime
from labrador_operator.handlers.children import observe_parent


def register(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    @kopf.on.event(API_GROUP, API_VERSION, PLURAL, id="on_finetunejob", registry=registry)
    async def on_finetunejob(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        observe_parent(rt, PLURAL, event, body)
