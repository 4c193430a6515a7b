"""The chart's RBAC against what the operator really asks the API server for.

The integration control plane writes an audit log of every request made by the release namespace's service accounts
(hack/cluster.py ``audit_groups``); the in-process operator runs with the chart's ServiceAccount token. This test runs
last in the integration tier (conftest orders it), when every other test has driven the operator, and checks both
directions: no request was refused by the authorizer or needed a grant outside the chart's rules (none missing), and
every verb the chart grants was used (none unused) — except the few the API server checks without a request of the
operator's, each named below with the reason.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.integration.conftest import INSTALL_VALUES, RELEASE, RELEASE_NS, ROOT, Kube

OPERATOR = f"system:serviceaccount:{RELEASE_NS}:labrador"

#: granted verbs no request of the operator's uses, and why they are granted all the same
NOT_A_REQUEST = {
    ("labrador.dev", f"{kind}/finalizers", "update"): (
        "the OwnerReferencesPermissionEnforcement admission plugin asks the authorizer whether the creator of a child "
        "with blockOwnerDeletion may update its owner's finalizers; nothing is ever updated"
    )
    for kind in ("taxonomies", "syntheticdatajobs", "finetunejobs")
}


@dataclass(frozen=True)
class Rule:
    group: str
    resource: str
    verb: str
    names: frozenset[str]

    def allows(self, group: str, resource: str, verb: str, name: str) -> bool:
        return (self.group, self.resource, self.verb) == (group, resource, verb) and (
            not self.names or name in self.names
        )


def _granted(kube: Kube) -> list[Rule]:
    """The rules of every role the chart (with the tier's values) binds to the operator's ServiceAccount, one verb
    each."""
    docs = [
        d
        for d in yaml.safe_load_all(
            kube.helm("template", RELEASE, str(ROOT / "charts" / "labrador"), *INSTALL_VALUES, "-n", RELEASE_NS).stdout
        )
        if d
    ]
    bound = {
        d["roleRef"]["name"]
        for d in docs
        if d["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and any(s.get("kind") == "ServiceAccount" and s.get("name") == "labrador" for s in d.get("subjects") or [])
    }
    rules = []
    for d in docs:
        if d["kind"] in ("ClusterRole", "Role") and d["metadata"]["name"] in bound:
            for r in d.get("rules") or []:
                for group in r.get("apiGroups") or []:
                    for resource in r.get("resources") or []:
                        for verb in r["verbs"]:
                            rules.append(Rule(group, resource, verb, frozenset(r.get("resourceNames") or ())))
    assert rules, "the chart binds no role to the operator's ServiceAccount"
    return rules


def _requests(log: Path) -> list[dict[str, Any]]:
    """The operator's resource requests, one per request (a watch logs ResponseStarted, then ResponseComplete)."""
    seen: dict[str, dict[str, Any]] = {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["user"]["username"] == OPERATOR and "objectRef" in event:
            seen[event["auditID"]] = event
    return list(seen.values())


def test_the_chart_grants_exactly_what_the_operator_uses(installed: Kube, operator: Any) -> None:
    log = installed.cluster.dir / "logs" / "audit.log"
    assert log.exists(), "the integration control plane writes no audit log (hack/cluster.py audit_groups)"
    rules = _granted(installed)
    used: Counter[Rule] = Counter()
    refused, outside = [], []
    for event in _requests(log):
        ref = event["objectRef"]
        group = ref.get("apiGroup", "")
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        what = f"{event['verb']} {group or 'core'}/{resource} {ref.get('namespace', '')}/{ref.get('name', '')}"
        if event.get("annotations", {}).get("authorization.k8s.io/decision") != "allow":
            refused.append(f"{what}: {event.get('responseStatus', {}).get('message', '')}"[:300])
            continue
        match = [r for r in rules if r.allows(group, resource, event["verb"], ref.get("name", ""))]
        if not match:
            outside.append(what)  # allowed by a default role of the cluster, not by the chart
        used.update(match)
    assert sum(used.values()) > 100, f"too few audited requests to judge ({sum(used.values())}): did the tier run?"
    assert not refused, f"requests the chart's RBAC refused (a missing grant): {sorted(set(refused))}"
    assert not outside, f"requests the chart does not grant (they depend on the cluster's defaults): {outside}"
    unused = sorted(
        f"{r.verb} {r.group or 'core'}/{r.resource}" + (f" {sorted(r.names)}" if r.names else "")
        for r in rules
        if not used[r] and (r.group, r.resource, r.verb) not in NOT_A_REQUEST
    )
    assert not unused, f"granted but never used by the operator in the integration tier: {unused}"
