"""Kubernetes ``$(VAR)`` expansion (k8s.io/kubernetes third_party/forked/golang/expansion), no shell involved.

``$$`` is an escaped ``$``; ``$(NAME)`` becomes NAME's value, or stays as written when NAME is undefined;
any other ``$`` is kept literally.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def expand(text: str, lookup: Callable[[str], str | None] | Mapping[str, str]) -> str:
    get = lookup.get if isinstance(lookup, Mapping) else lookup
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:  # unterminated: "$(" kept, the rest read on
                out.append("$(")
                i += 2
                continue
            value = get(text[i + 2 : end])
            out.append(text[i : end + 1] if value is None else value)
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)
