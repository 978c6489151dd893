"""Every span name and attribute key agentrt emits, in one place.

GenAI semantic-convention keys (``gen_ai.*``, OpenTelemetry's conventions for model and
tool calls) sit next to agentrt's own (``agentrt.*``), so any OTel backend understands
the model and tool spans and agentrt-aware tools get the rest. ``openinference.span.kind``
is what Arize Phoenix groups spans by.
"""

from __future__ import annotations

__all__ = [
    "AGENT_RUN",
    "AGENT_STEP",
    "APPROVAL_WAIT",
    "CONTENT_KEYS",
    "LLM_CALL",
    "POLICY_CHECK",
    "SPAN_NAMES",
    "TOOL_CALL",
]

# span names ------------------------------------------------------------------------------
AGENT_RUN = "agent.run"
"""One segment of a run: its start, or one resume."""
AGENT_STEP = "agent.step"
"""One node of the run graph; its kind is agentrt.step.kind."""
LLM_CALL = "llm.call"
"""One call of the planner's model."""
TOOL_CALL = "tool.call"
"""One call of a tool (or of an irreversible tool's preview)."""
POLICY_CHECK = "policy.check"
"""One evaluation of the policy for an action."""
APPROVAL_WAIT = "approval.wait"
"""The time a run waited for a person, from the interrupt to the decision."""

SPAN_NAMES = (AGENT_RUN, AGENT_STEP, LLM_CALL, TOOL_CALL, POLICY_CHECK, APPROVAL_WAIT)

# agentrt.* -------------------------------------------------------------------------------
RUN_ID = "agentrt.run_id"
SEGMENT = "agentrt.segment"
"""How the segment began: start, resume."""
RUN_STATUS = "agentrt.run.status"
"""The run's status when the segment ended."""
STEP_KIND = "agentrt.step.kind"
STEP_ID = "agentrt.step_id"
RETRY_COUNT = "agentrt.retry_count"
INTERRUPTED = "agentrt.interrupted"
"""True on the step that stopped at a human gate."""
TOOL_EFFECT = "agentrt.tool.effect"
TOOL_PHASE = "agentrt.tool.phase"
"""call, preview (an irreversible tool's prepare) or commit."""
TOOL_OUTCOME = "agentrt.tool.outcome"
POLICY_DECISION = "agentrt.policy.decision"
POLICY_RULE = "agentrt.policy.rule_id"
POLICY_NAME = "agentrt.policy.name"
POLICY_VERSION = "agentrt.policy.version"
HUMAN_GATE = "agentrt.human_gate"
"""The approval request id a run waited on."""
APPROVAL_KIND = "agentrt.approval.kind"
"""action (a rule asked for a person) or budget (a limit a person may raise)."""
APPROVAL_STATUS = "agentrt.approval.status"
APPROVAL_DECIDED_BY = "agentrt.approval.decided_by"
APPROVAL_ROLE = "agentrt.approval.required_role"
BUDGET_PREFIX = "agentrt.budget."
"""agentrt.budget.tokens_remaining, agentrt.budget.cost_usd_remaining, ..."""

# GenAI semantic conventions --------------------------------------------------------------
GEN_AI_OPERATION = "gen_ai.operation.name"
GEN_AI_PROVIDER = "gen_ai.provider.name"
GEN_AI_CONVERSATION = "gen_ai.conversation.id"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
"""The output cap the call was made with: the model's own, or one a budget lowered."""
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_RESULT = "gen_ai.tool.call.result"

OPENINFERENCE_KIND = "openinference.span.kind"

ERROR_TYPE = "error.type"
"""OpenTelemetry's name for what ended a span in error: the exception's class."""

CONTENT_KEYS = frozenset(
    {GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, GEN_AI_TOOL_ARGUMENTS, GEN_AI_TOOL_RESULT}
)
"""Attributes that carry content: set only with capture_content=True, always redacted."""
