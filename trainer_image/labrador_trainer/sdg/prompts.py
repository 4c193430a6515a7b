"""Prompt templates: YAML data files (``system``, Jinja ``user``/``assistant``, sampling), overridable by file name.

A stage's chat is ``system``, then few-shot turns rendered from the leaf's seed examples with the same ``user`` and
``assistant`` templates, then the final ``user`` turn. A directory given as ``promptsDir`` (a mounted ConfigMap)
replaces built-in files of the same name; anything malformed there is a user error reported with its file name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml

from labrador_trainer.sdg.llm import Messages

NAMES = (
    "knowledge_qa",
    "freeform_question",
    "freeform_answer",
    "grounded_context",
    "grounded_question",
    "grounded_answer",
    "judge_faithfulness",
    "judge_relevancy",
    "judge_question",
    "judge_pair",
)

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


class PromptError(ValueError):
    """A template file that cannot be used (reported with its file name; exit code 2)."""


@dataclass(frozen=True)
class Template:
    name: str
    system: str
    user: jinja2.Template
    assistant: jinja2.Template
    max_tokens: int
    temperature: float

    def messages(
        self, shots: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], final: Mapping[str, Any]
    ) -> Messages:
        msgs: Messages = [{"role": "system", "content": self.system.strip()}]
        for user_vars, assistant_vars in shots:
            msgs.append({"role": "user", "content": self.user.render(**user_vars).strip()})
            msgs.append({"role": "assistant", "content": self.assistant.render(**assistant_vars).strip()})
        msgs.append({"role": "user", "content": self.user.render(**final).strip()})
        return msgs


def _parse(name: str, text: str, origin: str) -> Template:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PromptError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise PromptError(f"{origin}: expected a mapping with system, user, assistant")
    missing = [k for k in ("system", "user", "assistant") if not isinstance(data.get(k), str)]
    if missing:
        raise PromptError(f"{origin}: missing string key(s) {', '.join(missing)}")
    try:
        max_tokens = int(data.get("max_tokens", 256))
        temperature = float(data.get("temperature", 0.7))
        user, assistant = _ENV.from_string(data["user"]), _ENV.from_string(data["assistant"])
    except (TypeError, ValueError) as exc:
        raise PromptError(f"{origin}: bad max_tokens/temperature: {exc}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{origin}:{exc.lineno}: template syntax error: {exc.message}") from exc
    if not 1 <= max_tokens <= 32768 or not 0.0 <= temperature <= 2.0:
        raise PromptError(f"{origin}: max_tokens must be 1..32768 and temperature 0..2")
    return Template(name, data["system"], user, assistant, max_tokens, temperature)


def load_templates(prompts_dir: str | Path | None = None) -> dict[str, Template]:
    """The built-in templates, each replaced by ``<prompts_dir>/<name>.yaml`` when that file exists."""
    out: dict[str, Template] = {}
    override = Path(prompts_dir) if prompts_dir else None
    if override is not None and not override.is_dir():
        raise PromptError(f"prompts directory {override} does not exist")
    if override is not None:
        unknown = sorted(p.name for p in override.glob("*.yaml") if p.stem not in NAMES)
        if unknown:
            raise PromptError(f"{override}: unknown prompt file(s) {unknown}; known: {', '.join(NAMES)}")
    for name in NAMES:
        user_file = override / f"{name}.yaml" if override is not None else None
        if user_file is not None and user_file.is_file():
            out[name] = _parse(name, user_file.read_text(encoding="utf-8"), str(user_file))
        else:
            text = resources.files("labrador_trainer.sdg").joinpath("prompts", f"{name}.yaml").read_text("utf-8")
            out[name] = _parse(name, text, f"built-in {name}.yaml")
    return out
