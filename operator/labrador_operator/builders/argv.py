"""User strings as container argv elements."""

from __future__ import annotations


def argv_literal(value: str) -> str:
    """A user's string as one argv element, taken literally: the kubelet expands ``$(VAR)`` in ``command``/``args``
    (``$$`` is a literal ``$``), so a ref or URL holding ``$(SECRET_ENV)`` would otherwise be replaced by the value."""
    return value.replace("$", "$$")
