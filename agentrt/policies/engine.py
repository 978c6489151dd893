"""The policy engine: which rules match an action, and what they decide together."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cel
import yaml

from agentrt.errors import ConfigError
from agentrt.policies.loader import (
    PolicyFileError,
    load_policy_text,
    locate,
    read_policy_file,
    validate_policy_data,
)
from agentrt.policies.model import PolicyFile, Rule
from agentrt.principal import Principal
from agentrt.tools.contract import ToolSpec

__all__ = ["Policy", "PolicyDecision"]

Outcome = Literal["allow", "deny", "require_approval"]
# Most restrictive first: a deny anywhere beats an approval requirement, which beats allow.
_RANK: dict[str, int] = {"deny": 0, "require_approval": 1, "allow": 2}


@dataclass(frozen=True, kw_only=True, slots=True)
class PolicyDecision:
    """What the policy decided about one action, and why."""

    outcome: Outcome
    """allow, deny or require_approval."""
    rule_id: str | None
    """The rule that decided; None for the scopes check and for the default."""
    matched: tuple[str, ...]
    """Every rule that matched, in file order."""
    reason: str
    """Why, in words."""
    required_role: str | None = None
    """For require_approval: who may approve."""
    four_eyes: bool = False
    """For require_approval: the requester may not approve."""
    expires_in: float | None = None
    """For require_approval: seconds until the request expires."""
    policy: str = ""
    """Policy name."""
    policy_version: str = ""
    """Content hash of the policy that decided."""


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    program: Any  # cel.Program; compiled once per policy load


class Policy:
    """A set of rules with a default, loaded from YAML or built from Rule objects."""

    def __init__(
        self,
        rules: Sequence[Rule | Mapping[str, Any]] = (),
        *,
        default: Literal["allow", "deny"] = "deny",
        name: str = "policy",
    ) -> None:
        source = f"<policy {name}>"
        plain: list[dict[str, Any]] = []
        for index, rule in enumerate(rules):
            if isinstance(rule, Rule):
                plain.append(rule.model_dump())
            elif isinstance(rule, Mapping):
                plain.append(dict(rule))
            else:
                raise ConfigError(
                    f"{source}: rule #{index + 1} is {rule!r}; give a Rule or a mapping "
                    "such as {'id': 'reads', 'match': {'effects': ['read']}, 'decision': 'allow'}"
                )
        parsed = validate_policy_data({"name": name, "default": default, "rules": plain}, source)
        self._init(parsed, None, source=source, text=parsed.model_dump_json())

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Load a YAML policy file; errors name file:line:column and the rule id."""
        parsed, node, text = read_policy_file(path)
        self = cls.__new__(cls)
        self._init(parsed, node, source=str(path), text=text)
        return self

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<string>") -> Policy:
        """Load a policy from YAML text."""
        parsed, node = load_policy_text(text, source)
        self = cls.__new__(cls)
        self._init(parsed, node, source=source, text=text)
        return self

    @classmethod
    def cautious(cls) -> Policy:
        """What a runtime uses when given no policy: reads run, side effects need a person."""
        return cls(
            [
                {
                    "id": "reads",
                    "match": {"effects": ["read"]},
                    "decision": "allow",
                    "reason": "reading has no side effect",
                },
                {
                    "id": "side-effects-need-approval",
                    "match": {"effects": ["write", "irreversible"]},
                    "decision": "require_approval",
                    "reason": "no policy was given, so every side effect needs a person's approval",
                },
            ],
            default="deny",
            name="default",
        )

    @classmethod
    def allow_all(cls) -> Policy:
        """A policy that allows every action a principal's scopes permit."""
        return cls(default="allow", name="allow-all")

    def _init(self, parsed: PolicyFile, node: yaml.Node | None, *, source: str, text: str) -> None:
        self.name = parsed.name
        self.default: Literal["allow", "deny"] = parsed.default
        self.source = source
        self.version = hashlib.sha256(text.encode()).hexdigest()[:16]
        seen: dict[str, int] = {}
        compiled: list[_CompiledRule] = []
        for index, rule in enumerate(parsed.rules):
            if rule.id in seen:
                raise self._error(
                    node,
                    ["rules", index, "id"],
                    source,
                    f"duplicate rule id {rule.id!r} (first used by rule #{seen[rule.id] + 1})",
                )
            seen[rule.id] = index
            program = None
            if rule.when is not None:
                try:
                    program = cel.compile(rule.when)
                except ValueError as exc:
                    raise self._error(
                        node,
                        ["rules", index, "when"],
                        source,
                        f"rule {rule.id!r}: `when` is not a valid CEL expression: "
                        f"{str(exc).splitlines()[0]}",
                    ) from None
            compiled.append(_CompiledRule(rule, program))
        self.rules: tuple[_CompiledRule, ...] = tuple(compiled)
        self._node = node

    @staticmethod
    def _error(
        node: yaml.Node | None, path: list[str | int], source: str, message: str
    ) -> ConfigError:
        target = locate(node, path) if node is not None else None
        if target is None:
            return PolicyFileError(source, None, None, message)
        return PolicyFileError(
            source, target.start_mark.line + 1, target.start_mark.column + 1, message
        )

    def check_tools(self, tool_names: Iterable[str]) -> None:
        """Refuse a rule that names a tool (without wildcards) the runtime does not have."""
        names = set(tool_names)
        for index, cr in enumerate(self.rules):
            for pattern in cr.rule.match.tools:
                if any(ch in pattern for ch in "*?[") or pattern in names:
                    continue
                raise self._error(
                    self._node,
                    ["rules", index, "match", "tools"],
                    self.source,
                    f"rule {cr.rule.id!r} names tool {pattern!r}, which this runtime does not "
                    f"have; known tools: {sorted(names)!r}",
                )

    def evaluate(
        self, tool: ToolSpec | None, tool_name: str, args: Mapping[str, Any], principal: Principal
    ) -> PolicyDecision:
        """Decide one action: scopes first, then every rule, most restrictive wins."""
        common: dict[str, Any] = {"policy": self.name, "policy_version": self.version}
        if tool is None:
            return PolicyDecision(
                outcome="deny",
                rule_id=None,
                matched=(),
                reason=f"unknown tool {tool_name!r}: the runtime has no such tool",
                **common,
            )
        missing = [s for s in tool.scopes if s not in principal.scopes]
        if missing:
            return PolicyDecision(
                outcome="deny",
                rule_id=None,
                matched=(),
                reason=f"principal {principal.id!r} lacks scopes {missing!r} "
                f"required by tool {tool_name!r}",
                **common,
            )
        activation = {
            "args": dict(args),
            "tool": {
                "name": tool.name,
                "effect": tool.effect.value,
                "cost_usd": tool.cost_usd,
                "scopes": list(tool.scopes),
            },
            "principal": principal.to_dict() | {"tenant": principal.tenant or ""},
        }
        matched: list[tuple[Rule, str]] = []
        for cr in self.rules:
            if not self._matches(cr.rule, tool, principal):
                continue
            note = ""
            if cr.program is not None:
                try:
                    value = cr.program.execute(activation)
                    problem = None if isinstance(value, bool) else f"gave {value!r}, not a bool"
                except Exception as exc:  # any CEL runtime error; handled below
                    value, problem = False, f"failed to evaluate: {exc!r}"
                if problem is not None:
                    # Fail closed: a condition that cannot be read as true or false never
                    # allows, and a restrictive rule whose condition breaks still applies.
                    if cr.rule.decision == "allow":
                        continue
                    note = f" (its condition {problem})"
                elif value is not True:
                    continue
            matched.append((cr.rule, note))
        if not matched:
            return PolicyDecision(
                outcome=self.default,
                rule_id=None,
                matched=(),
                reason=f"no rule matched; the policy default is {self.default}",
                **common,
            )
        rule, note = min(matched, key=lambda m: _RANK[m[0].decision])
        approval = rule.approval
        return PolicyDecision(
            outcome=rule.decision,
            rule_id=rule.id,
            matched=tuple(r.id for r, _ in matched),
            reason=(rule.reason or f"rule {rule.id!r} says {rule.decision}") + note,
            required_role=approval.role if approval else None,
            four_eyes=approval.four_eyes if approval else False,
            expires_in=approval.expires_in if approval else None,
            **common,
        )

    @staticmethod
    def _matches(rule: Rule, tool: ToolSpec, principal: Principal) -> bool:
        m = rule.match
        if not any(fnmatch.fnmatchcase(tool.name, pattern) for pattern in m.tools):
            return False
        if m.effects is not None and tool.effect not in m.effects:
            return False
        if m.roles is not None and not set(m.roles) & set(principal.roles):
            return False
        return m.tenants is None or principal.tenant in m.tenants

    def __repr__(self) -> str:
        return (
            f"Policy(name={self.name!r}, rules={len(self.rules)}, default={self.default!r}, "
            f"version={self.version!r})"
        )
