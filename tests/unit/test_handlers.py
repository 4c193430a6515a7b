"""What the kopf handlers may be, read from their source (kopf's registry has no public view): only watch events,
lifecycle and admission handlers — no change-detecting handlers, timers, daemons or indexes, which would need kopf's
diff base, a finalizer on every job and a per-object record (the operator turns all three off: NoDiffBase,
TransientMemories) — watch handlers async, startup's ``configure`` registered before the sampler starts, and every
module's ``register`` called by ``labrador-operator``."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from labrador_operator.controller.kopf_compat import TransientMemories
from labrador_operator.handlers.startup import NoDiffBase
from tests.conftest import ROOT

HANDLERS = ROOT / "operator" / "labrador_operator" / "handlers"
MODULES = sorted(p for p in HANDLERS.glob("*.py") if p.name != "__init__.py")
#: kopf.on.<what> a handler may use
ALLOWED = {"event", "startup", "cleanup", "login", "validate", "mutate"}


def _decorated(path: Path) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                call = dec.func if isinstance(dec, ast.Call) else dec
                if isinstance(call, ast.Attribute) and ast.unparse(call.value) == "kopf.on":
                    out.append((call.attr, node))
                elif isinstance(call, ast.Attribute) and ast.unparse(call).startswith("kopf."):
                    out.append((ast.unparse(call), node))
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_handlers_only_watch_events_lifecycle_and_admission(path: Path) -> None:
    used = _decorated(path)
    assert {what for what, _ in used} <= ALLOWED, [what for what, _ in used]
    for what, fn in used:
        if what == "event":  # kopf frees an event's body when its handler returns, never waiting for a thread
            assert isinstance(fn, ast.AsyncFunctionDef), fn.name
        # registered into the registry given to register(), never kopf's default one, under an id of its own (a
        # closure's default id would be "register.<locals>.<name>" in every log line and webhook path)
        calls = [d for d in fn.decorator_list if isinstance(d, ast.Call)]
        assert any(k.arg == "registry" for d in calls for k in d.keywords), fn.name
        assert any(k.arg == "id" for d in calls for k in d.keywords), fn.name


def test_every_handler_module_registers_and_main_registers_each() -> None:
    main = (ROOT / "operator" / "labrador_operator" / "main.py").read_text()
    for path in MODULES:
        tree = ast.parse(path.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "register" for n in tree.body), path.name
        if _decorated(path):
            assert f"{path.stem}.register(" in main or path.stem in main.split("for module in (")[1].split(")")[0]


def test_startup_configures_before_the_sampler_starts() -> None:
    names = [fn.name for what, fn in _decorated(HANDLERS / "startup.py") if what == "startup"]
    assert names.index("configure") < names.index("load_cache") < names.index("start_sampler")


def test_kopf_keeps_no_diff_base_and_no_record_per_object() -> None:
    storage = NoDiffBase()
    assert storage.build(body={"metadata": {}}) == {} and storage.fetch(body={"metadata": {}}) == {}
    memories = TransientMemories()
    body = {"metadata": {"uid": "u1", "name": "a", "namespace": "n"}}
    first = asyncio.run(memories.recall(body))
    second = asyncio.run(memories.recall(body))
    assert first is not second and list(memories.iter_all_memories()) == []


def test_kopf_is_in_the_range_its_compat_module_was_written_for() -> None:
    import tomllib
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d.removeprefix("kopf") for d in deps if d.startswith("kopf")]
    assert version("kopf") in SpecifierSet(spec), (version("kopf"), spec)
    import kopf

    from labrador_operator.controller.kopf_compat import queueing_settings

    assert queueing_settings(kopf.OperatorSettings()).idle_timeout > 0


def test_a_namespace_in_the_watch_streams_own_listing_is_noticed() -> None:
    """kopf drops the namespace watch's initial listing (events of type None) as already known; a namespace created
    between kopf's first listing and the watch's is then never watched. kopf_compat revises from those too."""
    from kopf._cogs.structs.references import Insights
    from kopf._core.reactor import observation

    from labrador_operator.controller.kopf_compat import notice_namespaces_listed_by_the_watch

    async def listed(name: str) -> set[object]:
        insights = Insights()
        event = {"type": None, "object": {"metadata": {"name": name}}}
        await observation.process_discovered_namespace_event(raw_event=event, namespaces=["t-*"], insights=insights)
        return insights.namespaces

    notice_namespaces_listed_by_the_watch()
    notice_namespaces_listed_by_the_watch()  # idempotent: patched once
    assert asyncio.run(listed("t-new")) == {"t-new"}
    assert asyncio.run(listed("other")) == set()  # patterns still decide
