"""Every span name and attribute key agentrt emits, in one place.

GenAI semantic-convention keys (``gen_ai.*``, OpenTelemetry's conventions for model, tool
and agent calls) sit next to agentrt's own (``agentrt.*``), so any OTel backend understands
the model and tool spans and agentrt-aware tools get the rest. ``openinference.span.kind``,
``input.value``, ``user.id`` and ``metadata`` are what Arize Phoenix groups and lists spans
by (Langfuse reads them too).

A span's name says what it is, as the conventions name them (``chat gpt-4o-mini``,
``execute_tool lookup_order``, ``plan``, ``policy 1.0``); what kind of span it is in
agentrt's own taxonomy (agent.run, agent.step, llm.call, ...) is the attribute
``agentrt.span.kind``, which ``agentrt trace`` and queries read.
"""

from __future__ import annotations

__all__ = [
    "AGENT_RUN",
    "AGENT_STEP",
    "APPROVAL_WAIT",
    "CONTENT_KEYS",
    "LLM_CALL",
    "POLICY_CHECK",
    "SPAN_KINDS",
    "TOOL_CALL",
]

# span kinds (the value of agentrt.span.kind) ---------------------------------------------
AGENT_RUN = "agent.run"
"""One segment of a run: its start, or one resume. The first is the run's root."""
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

SPAN_KINDS = (AGENT_RUN, AGENT_STEP, LLM_CALL, TOOL_CALL, POLICY_CHECK, APPROVAL_WAIT)

# agentrt.* -------------------------------------------------------------------------------
SPAN_KIND = "agentrt.span.kind"
"""Which of SPAN_KINDS a span is (its name says it in the conventions' words)."""
RUN_ID = "agentrt.run_id"
SEGMENT = "agentrt.segment"
"""How the segment began: start, resume, or message (a follow-up on the thread)."""
MESSAGE_INDEX = "agentrt.message.index"
"""For a segment that takes a follow-up message: its place in the thread (1, 2, ...)."""
DRIVEN_FROM = "agentrt.segment.driven_from"
"""When this process began to drive the segment, in epoch seconds: its span may begin
earlier, where the wait for a person it resumes from began."""
RUN_STATUS = "agentrt.run.status"
"""The run's status when the segment ended."""
TENANT = "agentrt.tenant"
"""The tenant of the run's principal."""
STEP_KIND = "agentrt.step.kind"
STEP_ID = "agentrt.step_id"
RETRY_COUNT = "agentrt.retry_count"
INTERRUPTED = "agentrt.interrupted"
"""True on the step that stopped at a human gate."""
TOOL_NAME = "agentrt.tool.name"
"""The tool an action calls, on spans about the action that do not execute it (the policy
check, the wait for a person): gen_ai.tool.name would make backends call them tool calls."""
TOOL_EFFECT = "agentrt.tool.effect"
TOOL_SERVER = "agentrt.tool.server"
"""The MCP server that ran the tool, by its name in the runtime (gen_ai.tool.type is then
"extension"); absent for a tool this process runs."""
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
COST_USD = "agentrt.cost_usd"
"""What a model call cost by agentrt's price table (the one budgets count with)."""
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
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
"""Only on tool executions (tool.call spans)."""
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
"""The system prompt, as a list of parts."""
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
"""The chat history sent, as messages of parts ({role, parts: [...]})."""
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
"""The answer, as messages of parts with a finish_reason each."""
GEN_AI_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
"""The tools the model was offered: {type, name, description, parameters}."""
GEN_AI_TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_RESULT = "gen_ai.tool.call.result"

# OpenInference (Arize Phoenix; Langfuse reads these too) ---------------------------------
OPENINFERENCE_KIND = "openinference.span.kind"
INPUT_VALUE = "input.value"
"""On agent.run only: the run's goal (a backend would show it as a model call's input,
ahead of its messages, if an llm.call carried one)."""
INPUT_MIME_TYPE = "input.mime_type"
OUTPUT_VALUE = "output.value"
"""On agent.run only: the answer, or why the run failed."""
OUTPUT_MIME_TYPE = "output.mime_type"
USER_ID = "user.id"
"""The id of the principal the run acts for."""
SESSION_ID = "session.id"
"""The run's thread id: every segment of a run is one session."""
METADATA = "metadata"
"""JSON object of what a backend lists beside a run: its tenant."""
LLM_COST_PROMPT = "llm.cost.prompt"
LLM_COST_COMPLETION = "llm.cost.completion"
LLM_COST_TOTAL = "llm.cost.total"

ERROR_TYPE = "error.type"
"""OpenTelemetry's name for what ended a span in error: the exception's class."""

CONTENT_KEYS = frozenset(
    {
        GEN_AI_SYSTEM_INSTRUCTIONS,
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_TOOL_DEFINITIONS,
        GEN_AI_TOOL_ARGUMENTS,
        GEN_AI_TOOL_RESULT,
        INPUT_VALUE,
        OUTPUT_VALUE,
    }
)
"""Attributes that carry content: set only with capture_content=True, always redacted."""
