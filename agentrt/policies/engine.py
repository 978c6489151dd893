"""The policy engine: which rules match an action, and what they decide together."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from agentrt.errors import ConfigError
from agentrt.policies.cel_engine import cel
from agentrt.policies.conditions import CONDITION_VARIABLES, unknown_variables
from agentrt.policies.decisions import Explanation, PolicyDecision, RuleCheck
from agentrt.policies.grants import credential_refusal, ungranted_names
from agentrt.policies.loader import (
    PolicyFileError,
    load_policy_text,
    locate,
    read_policy_file,
    validate_policy_data,
)
from agentrt.policies.matching import mismatch
from agentrt.policies.model import PolicyFile, Rule
from agentrt.policies.names import MatchField, first_problem
from agentrt.principal import Principal
from agentrt.tools.contract import ToolSpec

if TYPE_CHECKING:
    from cel import Context

__all__ = ["Explanation", "Policy", "PolicyDecision", "RuleCheck"]

# Most restrictive first: a deny anywhere beats an approval requirement, which beats allow.
_RANK: dict[str, int] = {"deny": 0, "require_approval": 1, "allow": 2}
_CEL_PLACE = re.compile(r"<input>:(\d+):(\d+): (.*)")


def _measures(values: Mapping[str, Any]) -> dict[str, Any]:
    """Usage or budget for CEL: money, seconds and deadlines always as doubles.

    CEL does no arithmetic across int and double, so a budget written as
    ``max_cost_usd=1`` would break ``0.8 * budget.max_cost_usd``; counts stay ints.
    """
    return {
        k: float(v)
        if isinstance(v, int) and not isinstance(v, bool) and k.endswith(_DOUBLE_SUFFIXES)
        else v
        for k, v in values.items()
    }


_DOUBLE_SUFFIXES = ("_usd", "seconds", "deadline")


def _strictness(rule: Rule) -> tuple[int, bool, bool, float, str]:
    """Sort key: the rule that decides is the smallest."""
    spec = rule.approval
    return (
        _RANK[rule.decision],
        spec is None or spec.role is None,
        not (spec is not None and spec.four_eyes),
        spec.expires_in if spec is not None and spec.expires_in is not None else math.inf,
        rule.id,
    )


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
        tools: Mapping[str, Mapping[str, Any]] | None = None,
        credentials: Mapping[str, Mapping[str, Any]] | None = None,
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
        data = {
            "name": name,
            "default": default,
            "rules": plain,
            "tools": dict(tools or {}),
            "credentials": dict(credentials or {}),
        }
        parsed = validate_policy_data(data, source)
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
        """A policy that allows every action a principal's scopes permit, credentials too."""
        return cls(default="allow", name="allow-all", credentials={"*": {}})

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
                    raise self._cel_error(node, index, source, rule, str(exc)) from None
                unknown = unknown_variables(program, rule.when)
                if unknown:
                    raise self._error(
                        node,
                        ["rules", index, "when"],
                        source,
                        f"rule {rule.id!r}: `when` reads {unknown[0]!r}, which a condition "
                        f"does not have (it has {', '.join(CONDITION_VARIABLES)}); check the "
                        "spelling",
                    )
            compiled.append(_CompiledRule(rule, program))
        self.rules: tuple[_CompiledRule, ...] = tuple(compiled)
        self._tools = dict(parsed.tools)
        self.credentials = dict(parsed.credentials)
        """Who may use each credential (CredentialGrant by name)."""
        self._node = node

    @staticmethod
    def _error(
        node: yaml.Node | None,
        path: list[str | int],
        source: str,
        message: str,
        *,
        at_key: bool = False,
    ) -> ConfigError:
        target = locate(node, path, at_key=at_key) if node is not None else None
        if target is None:
            return PolicyFileError(source, None, None, message)
        return PolicyFileError(
            source, target.start_mark.line + 1, target.start_mark.column + 1, message
        )

    @classmethod
    def _cel_error(
        cls, node: yaml.Node | None, index: int, source: str, rule: Rule, message: str
    ) -> ConfigError:
        """A CEL syntax error, placed at the offending character when the YAML allows."""
        # The cel module reports "ERROR: <input>:LINE:COL: Syntax error: ..." after a
        # first line that repeats the expression.
        found = _CEL_PLACE.search(message)
        detail = found.group(3) if found else message.splitlines()[0]
        detail = re.sub(r" expecting \{.*\}$", "", detail)  # the grammar's token list
        error = cls._error(
            node,
            ["rules", index, "when"],
            source,
            f"rule {rule.id!r}: `when` is not a valid CEL expression {rule.when!r}: {detail}",
        )
        target = locate(node, ["rules", index, "when"]) if node is not None else None
        if (
            found
            and isinstance(error, PolicyFileError)
            and isinstance(target, yaml.ScalarNode)
            and target.start_mark.line == target.end_mark.line
            and found.group(1) == "1"
        ):
            # One line in the file: the column inside the expression maps onto it
            # (a quoted scalar starts one column before its text).
            quoted = 1 if target.style in ("'", '"') else 0
            column = target.start_mark.column + quoted + int(found.group(2))
            return PolicyFileError(source, error.line, column, error.message)
        return error

    @property
    def tool_settings(self) -> dict[str, dict[str, Any]]:
        """What the file's ``tools:`` section says of each tool, by name: only the options
        it gives (ToolOverride's fields)."""
        return {
            name: {
                k: tuple(v) if isinstance(v, list) else v
                for k, v in settings.model_dump(exclude_none=True).items()
            }
            for name, settings in self._tools.items()
        }

    def check_tools(
        self,
        tool_names: Iterable[str],
        *,
        servers: Iterable[str] | None = None,
        credentials: Iterable[str] | None = None,
    ) -> None:
        """Refuse what the policy names that the runtime lacks: a rule's tool (a name, or a
        glob that matches none of ``tool_names``), a ``tools:`` entry for a tool it does not
        have; given the runtime's MCP ``servers``, a rule's server (a name, or a glob); given
        the ``credentials`` its tools declare, a grant of one no tool declares and a rule's
        credential (a name, or a glob) that matches none of them; and an entry that is one
        of these names and, read as a glob, others too (``wipe[prod]`` and ``wiped``).

        ``tool_names`` must be every tool the runtime has, an MCP server's too: a runtime
        checks its policy after its toolsets listed their tools."""
        names = set(tool_names)
        if credentials is not None and (typo := ungranted_names(self.credentials, credentials)):
            raise self._error(
                self._node, ["credentials", typo[0]], self.source, typo[1], at_key=True
            )
        for name in self._tools:
            if name not in names:
                raise self._error(
                    self._node,
                    ["tools", name],
                    self.source,
                    f"the tools section sets options of tool {name!r}, which this runtime "
                    f"does not have; known tools: {sorted(names)!r}",
                    at_key=True,
                )
        checks: list[tuple[MatchField, set[str] | None]] = [
            ("servers", None if servers is None else set(servers)),
            ("tools", names),
            ("credentials", None if credentials is None else set(credentials)),
        ]
        rules = [cr.rule for cr in self.rules]
        for field, known in checks:
            if known is None:
                continue
            found = first_problem(rules, field, known)
            if found is not None:
                index, at, why = found
                raise self._error(
                    self._node, ["rules", index, "match", field, at], self.source, why
                )

    def evaluate(
        self,
        tool: ToolSpec | None,
        tool_name: str,
        args: Mapping[str, Any],
        principal: Principal,
        *,
        run: Mapping[str, Any] | None = None,
        usage: Mapping[str, Any] | None = None,
        budget: Mapping[str, Any] | None = None,
    ) -> PolicyDecision:
        """Decide one action: scopes first, then every rule, most restrictive wins.

        ``run`` (thread_id, goal, step_id), ``usage`` and ``budget`` are what `when`
        conditions see besides the action; a condition that reads one not given fails
        to evaluate, and so never allows.
        """
        return self._decide(
            tool, tool_name, args, principal, run=run, usage=usage, budget=budget, checks=None
        )

    def explain(
        self,
        tool: ToolSpec | None,
        tool_name: str,
        args: Mapping[str, Any],
        principal: Principal,
        *,
        run: Mapping[str, Any] | None = None,
        usage: Mapping[str, Any] | None = None,
        budget: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """evaluate(), plus how each rule fared and why: what `agentrt policy explain` shows."""
        checks: list[RuleCheck] = []
        decision = self._decide(
            tool, tool_name, args, principal, run=run, usage=usage, budget=budget, checks=checks
        )
        return Explanation(decision=decision, checks=tuple(checks))

    def _decide(
        self,
        tool: ToolSpec | None,
        tool_name: str,
        args: Mapping[str, Any],
        principal: Principal,
        *,
        run: Mapping[str, Any] | None,
        usage: Mapping[str, Any] | None,
        budget: Mapping[str, Any] | None,
        checks: list[RuleCheck] | None,
    ) -> PolicyDecision:
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
                f"required by tool {tool_name!r}, so the tool is not offered to it",
                **common,
            )
        refused = credential_refusal(
            self.credentials, tool.credentials, tool_name, principal, self.name
        )
        if refused is not None:
            return PolicyDecision(
                outcome="deny", rule_id=None, matched=(), reason=refused, **common
            )
        activation = {
            "args": dict(args),
            "tool": {
                "name": tool.name,
                "effect": tool.effect.value,
                "cost_usd": tool.cost_usd,
                "scopes": list(tool.scopes),
                "credentials": list(tool.credentials),
            },
            "principal": principal.to_dict() | {"tenant": principal.tenant or ""},
            "run": dict(run or {}),
            "usage": _measures(usage or {}),
            # An unset limit is absent rather than null: `has(budget.max_cost_usd)` asks.
            "budget": _measures({k: v for k, v in (budget or {}).items() if v is not None}),
        }
        # Built once per decision, on the first condition that runs: converting the
        # activation to CEL values costs more than evaluating a condition.
        context: Context | None = None
        matched: list[tuple[Rule, str]] = []
        for cr in self.rules:
            miss = mismatch(cr.rule, tool, principal, explain=checks is not None)
            if miss is not None:
                if checks is not None:
                    checks.append(RuleCheck(rule=cr.rule, matched=False, why=miss))
                continue
            note = problem = ""
            if cr.program is not None:
                try:
                    if context is None:
                        context = cel.Context(variables=activation)
                    value = cr.program.execute(context)
                    problem = "" if isinstance(value, bool) else f"gave {value!r}, not a bool"
                except Exception as exc:  # any CEL runtime error; handled below
                    value, problem = False, f"failed to evaluate: {exc!r}"
                if problem:
                    # Fail closed: a condition that cannot be read as true or false never
                    # allows, and a restrictive rule whose condition breaks still applies.
                    if cr.rule.decision == "allow":
                        if checks is not None:
                            why = f"`when` {problem}; an allow rule never matches on an error"
                            checks.append(RuleCheck(rule=cr.rule, matched=False, why=why))
                        continue
                    note = f" (its condition {problem})"
                elif value is not True:
                    if checks is not None:
                        checks.append(RuleCheck(rule=cr.rule, matched=False, why="`when` is false"))
                    continue
            if checks is not None:
                why = "`when` is true" if cr.program is not None else "matches"
                if problem:
                    why = f"`when` {problem}; a {cr.rule.decision} rule applies anyway"
                checks.append(RuleCheck(rule=cr.rule, matched=True, why=why))
            matched.append((cr.rule, note))
        if not matched:
            return PolicyDecision(
                outcome=self.default,
                rule_id=None,
                matched=(),
                reason=f"no rule matched; the policy default is {self.default}",
                **common,
            )
        # The winner does not depend on file order: the most restrictive kind, and among
        # approval rules the strictest (a named role, four eyes, the shortest expiry),
        # then the rule id.
        rule, note = min(matched, key=lambda m: _strictness(m[0]))
        extra: dict[str, Any] = {}
        if rule.decision == "require_approval":
            # Every matching approval rule's conditions hold at once.
            # A higher tier adds its role to a lower one's; it never replaces it.
            specs = [r.approval for r, _ in matched if r.decision == "require_approval"]
            expiries = [s.expires_in for s in specs if s and s.expires_in is not None]
            first = rule.approval.role if rule.approval else None
            roles = [first] if first else []
            roles += [s.role for s in specs if s and s.role and s.role not in roles]
            extra = {
                "required_role": roles[0] if roles else None,
                "required_roles": tuple(roles),
                "four_eyes": any(s.four_eyes for s in specs if s),
                "expires_in": min(expiries) if expiries else None,
                # What expiry does is the deciding rule's, like its role.
                "on_expiry": rule.approval.on_expiry if rule.approval else "reject",
                "escalate_to": rule.approval.escalate_to if rule.approval else None,
            }
        return PolicyDecision(
            outcome=rule.decision,
            rule_id=rule.id,
            matched=tuple(r.id for r, _ in matched),
            reason=(rule.reason or f"rule {rule.id!r} says {rule.decision}") + note,
            **extra,
            **common,
        )

    def __repr__(self) -> str:
        return (
            f"Policy(name={self.name!r}, rules={len(self.rules)}, default={self.default!r}, "
            f"version={self.version!r})"
        )
