"""The policy file format, as pydantic models: what a rule may say."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agentrt.tools.contract import Effect

__all__ = [
    "FROM_YAML",
    "MAX_DURATION",
    "ApprovalSpec",
    "CredentialGrant",
    "Match",
    "PolicyFile",
    "Rule",
    "ToolSettings",
    "parse_duration",
]

Outcome = Literal["allow", "deny", "require_approval"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MAX_DURATION = 36_500 * 86_400.0
"""The longest duration a policy may give, 36500d (100 years): an approval's expiry is
its request's time plus this, and must stay a date people can read."""


def parse_duration(value: str | float | int) -> float:
    """'90s', '15m', '4h', '3d' or a number of seconds -> seconds, at most MAX_DURATION."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if (isinstance(value, float) and not math.isfinite(value)) or value <= 0:
            # NaN compares false with 0: said apart
            raise ValueError(f"a duration must be a finite number > 0, got {value!r}")
        seconds = value  # an int past floats is compared as it is, below
    else:
        m = _DURATION.match(str(value))
        if not m or float(m.group(1)) <= 0:
            raise ValueError(f"{value!r} is not a duration like '90s', '15m', '4h' or '3d'")
        seconds = float(m.group(1)) * _UNIT[m.group(2)]  # inf past floats: refused below
    if seconds > MAX_DURATION:
        raise ValueError(
            f"a duration must be at most 36500d (100 years), got {value!r}; give a shorter "
            "one (a request that should never expire leaves expires_in out)"
        )
    return float(seconds)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FROM_YAML = "from_yaml"
"""The validation context's key that says the data is a YAML file's (``{FROM_YAML: True}``):
there a null is a key given with no value, refused where it would mean "any"."""


def _given(value: object, info: ValidationInfo, instead: str) -> object:
    """``value`` unless it is a YAML null: a key given with no value, refused saying
    ``instead``.

    YAML reads a key written with nothing after it, or whose list items are all commented
    out, as null, and None is what a field left out means: here the widest one (any role,
    any approver, no condition). A key that is written means to say something, so it
    must: the field is left out to mean "any". (In Python, None is written on purpose.)
    """
    if value is None and info.context and info.context.get(FROM_YAML):
        raise ValueError(
            f"{info.field_name} is given with no value (YAML null: nothing but a comment "
            f"after the key, or every item of its list commented out), which would read as "
            f"{instead}"
        )
    return value


class Match(_Strict):
    """Which actions a rule is about. Every given field must match; omitted means any."""

    tools: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Tool name globs, e.g. ["issue_*"]."""
    effects: list[Effect] | None = None
    """Effect classes: read, write, irreversible."""
    scopes: list[str] | None = None
    """Scope globs, e.g. ["payments:*"]: the tool requires at least one matching scope.

    The scopes check runs before any rule, so the principal holds every scope the tool
    requires; this field picks out actions by the kind of access they use.
    """
    roles: list[str] | None = None
    """The run's principal holds at least one of these roles."""
    tenants: list[str] | None = None
    """The run's principal belongs to one of these tenants."""
    servers: list[str] | None = None
    """MCP server name globs: the tool is one of these servers' (e.g. ["git"] for every
    tool the server named git offers)."""
    credentials: list[str] | None = None
    """Credential name globs: the tool needs at least one matching credential."""

    @field_validator(
        "tools", "effects", "scopes", "roles", "tenants", "servers", "credentials", mode="before"
    )
    @classmethod
    def _not_empty(cls, value: object, info: ValidationInfo) -> object:
        # An empty list matches nothing: a deny or approval rule that never applies, with
        # nothing said. A field left out is the way to say "any".
        one = str(info.field_name).removesuffix("s")
        if isinstance(value, list | tuple) and not value:
            raise ValueError(
                f"an empty list matches nothing, so the rule would never apply; leave "
                f"{info.field_name} out to match any {one}"
            )
        return _given(
            value,
            info,
            f"any {one}; list the {info.field_name} the rule is about, or remove the "
            f"{info.field_name} key to match any {one}",
        )


class ApprovalSpec(_Strict):
    """Who must approve, for require_approval rules."""

    role: str | None = None
    """Role the approver must hold; None (left out) lets any principal approve."""
    four_eyes: bool = False
    """The run's own principal may not approve."""
    expires_in: float | None = None
    """Seconds (or '15m', '4h', '3d') until the request expires; None: never."""

    on_expiry: Literal["reject", "escalate"] = "reject"
    """What an expired request becomes: reject tells the planner it expired; escalate asks
    a person holding ``escalate_to`` instead."""
    escalate_to: str | None = None
    """For on_expiry: escalate, the role the new request requires."""

    @field_validator("role", "escalate_to", mode="before")
    @classmethod
    def _stated(cls, value: object, info: ValidationInfo) -> object:
        instead = {
            "role": "anyone may approve; name the role that approves (role: approver), or "
            "remove the role key to let anyone approve",
            "escalate_to": "no role; name the role an expired request goes to",
        }[str(info.field_name)]
        return _given(value, info, instead)

    @field_validator("expires_in", mode="before")
    @classmethod
    def _duration(cls, value: object, info: ValidationInfo) -> float | None:
        given = _given(
            value,
            info,
            "a request that never expires; give a duration such as '4h', or remove the "
            "expires_in key for one that never expires",
        )
        return None if given is None else parse_duration(given)  # type: ignore[arg-type]

    @field_validator("role", "escalate_to")
    @classmethod
    def _named(cls, value: str | None, info: ValidationInfo) -> str | None:
        # "" reads as "no role", which for role means anyone may approve: say it apart.
        if value is not None and not value.strip():
            raise ValueError(
                f"an empty {info.field_name} names no role; name one, or leave "
                f"{info.field_name} out"
                + (" to let anyone approve" if info.field_name == "role" else "")
            )
        return value

    @model_validator(mode="after")
    def _escalation(self) -> ApprovalSpec:
        if self.on_expiry == "escalate":
            if not self.escalate_to:
                raise ValueError("on_expiry: escalate needs escalate_to: <role>")
            if self.expires_in is None:
                raise ValueError("on_expiry: escalate needs expires_in, or it never expires")
        elif self.escalate_to is not None:
            raise ValueError(
                f"escalate_to {self.escalate_to!r} is set but on_expiry is 'reject'; "
                "add on_expiry: escalate, or remove escalate_to"
            )
        return self


class Rule(_Strict):
    """One rule: when it matches an action, it says allow, deny or require_approval."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Unique within the file; recorded with every decision it takes part in."""
    match: Match = Field(default_factory=Match)
    """Which actions the rule is about."""
    when: str | None = None
    """A CEL expression that must be true for the rule to match.

    It sees ``args`` (the validated arguments), ``tool`` (name, effect, cost_usd, scopes),
    ``principal`` (id, roles, tenant, scopes), ``run`` (thread_id, goal, step_id),
    ``usage`` (what the run has spent) and ``budget`` (its limits; a limit that is not set
    is absent, so test it with ``has(budget.max_cost_usd)``).
    """
    decision: Outcome
    """What the rule says."""
    approval: ApprovalSpec | None = None
    """For require_approval: who approves and until when."""
    reason: str = ""
    """Why, in words a person reviewing the decision understands."""

    @field_validator("when", "approval", mode="before")
    @classmethod
    def _stated(cls, value: object, info: ValidationInfo) -> object:
        instead = {
            "when": "no condition, a rule that applies whatever the arguments; write the "
            "CEL condition (when: args.amount <= 50), or remove the when key for a rule "
            "with none",
            "approval": "anyone may approve; say who (approval: {role: approver}), or "
            "remove the approval key to let anyone approve",
        }[str(info.field_name)]
        return _given(value, info, instead)

    @model_validator(mode="after")
    def _no_approver_on_allow(self) -> Rule:
        # Who approves, on a rule that allows without asking anyone: most likely a
        # require_approval written wrong, which would let the action through unseen. (On a
        # deny it is ignored and nothing gets through: a rule turned to deny for a while
        # may keep it.)
        if self.approval is not None and self.decision == "allow":
            raise ValueError(
                "approval: says who approves, but this rule's decision is 'allow', which "
                "asks no one; make it require_approval, or remove approval:"
            )
        return self


class ToolSettings(_Strict):
    """What the policy says of one tool over what the tool says of itself (an MCP server's
    annotations, a LangChain tool's silence): each field given replaces the tool's own."""

    effect: Effect | None = None
    """read, write or irreversible."""
    idempotent: bool | None = None
    """True if calling it twice with the same arguments is safe."""
    scopes: list[str] | None = None
    """Scopes a principal must hold, all of them, for the tool to be offered or run."""
    cost_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Declared price of one call, counted against Budget.max_cost_usd."""
    sensitive: list[str] | None = None
    """Argument and result field names to mask wherever they are shown."""
    timeout: float | None = None
    """Seconds (or '90s', '5m') one attempt may take."""

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        return None if value is None else parse_duration(value)  # type: ignore[arg-type]


class CredentialGrant(_Strict):
    """Who may use one credential: every field given must hold; omitted means anyone."""

    principals: list[str] | None = None
    """The run's principal is one of these ids."""
    roles: list[str] | None = None
    """The run's principal holds at least one of these roles."""
    tenants: list[str] | None = None
    """The run's principal belongs to one of these tenants."""
    reason: str = ""
    """Why, in words, for a principal who is refused."""

    @field_validator("principals", "roles", "tenants", mode="before")
    @classmethod
    def _stated(cls, value: object, info: ValidationInfo) -> object:
        one = str(info.field_name).removesuffix("s")
        return _given(
            value,
            info,
            f"any {one}, granting the credential to them all; list the {info.field_name} "
            f"it is granted to, or remove the {info.field_name} key to grant it to any {one}",
        )


class PolicyFile(_Strict):
    """A whole policy file."""

    version: int = 1
    """Format version of the file."""
    name: str = "policy"
    """Name recorded with each decision."""
    default: Literal["allow", "deny"] = "deny"
    """What happens when no rule matches."""
    rules: list[Rule] = Field(default_factory=list)
    """Evaluated all together; the most restrictive matching decision wins."""
    tools: dict[str, ToolSettings] = Field(default_factory=dict)
    """Per tool name: its effect, idempotency, scopes, price, sensitive fields or timeout,
    in place of what the tool says (each name must be a tool the runtime has)."""
    credentials: dict[str, CredentialGrant] = Field(default_factory=dict)
    """Per credential name ("*": any): who may run a tool that needs it. A credential not
    named is granted to no one."""

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"unknown policy format version {value!r}; this agentrt reads 1")
        return value
