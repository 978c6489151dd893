"""The public surface is a contract: it changes on purpose, never by accident."""

from __future__ import annotations

import agentrt
import agentrt.testing


def test_public_names() -> None:
    assert sorted(agentrt.__all__) == [
        "Action",
        "AgentRuntime",
        "AgentRuntimeError",
        "AlreadyDecided",
        "ApprovalError",
        "ApprovalExpired",
        "ApprovalPage",
        "ApprovalRequest",
        "ApprovalStatus",
        "ArtifactRef",
        "Budget",
        "BudgetExceeded",
        "ConfigError",
        "CredentialError",
        "Credentials",
        "Decision",
        "DoubleTexting",
        "Effect",
        "IllegalTransition",
        "InvalidDecision",
        "MCPServer",
        "Memory",
        "MemoryItem",
        "NotAuthorized",
        "Observation",
        "ObservationKind",
        "Plan",
        "Policy",
        "PolicyDecision",
        "Principal",
        "Redactor",
        "ReplayReport",
        "Rule",
        "Run",
        "RunBusy",
        "RunError",
        "RunState",
        "RunStatus",
        "SizeLimits",
        "Summarize",
        "Sweep",
        "ThreadBusy",
        "ThreadMessage",
        "ToolContext",
        "ToolError",
        "ToolSpec",
        "Trace",
        "UnknownArtifact",
        "UnknownRun",
        "Usage",
        "__version__",
        "as_tool",
        "build_run_graph",
        "memory_tools",
        "run_python",
        "tool",
    ]
    for name in agentrt.__all__:
        assert hasattr(agentrt, name), name


def test_testing_names() -> None:
    assert sorted(agentrt.testing.__all__) == [
        "ScriptExhausted",
        "ScriptedCall",
        "ScriptedChatModel",
        "action",
        "ai",
        "node_deps",
        "run_state",
        "tool_call",
    ]


def test_service_names() -> None:
    import agentrt.service

    assert sorted(agentrt.service.__all__) == [
        "ApiKey",
        "ServiceSettings",
        "agentrt_lifespan",
        "create_app",
        "issue_key",
    ]
    for name in agentrt.service.__all__:
        assert hasattr(agentrt.service, name), name


def test_runtime_methods_of_the_design() -> None:
    for method in (
        "start",
        "decide",
        "resume",
        "get",
        "runs",
        "approvals",
        "events",
        "astart",
        "adecide",
        "aresume",
        "close",
    ):
        assert callable(getattr(agentrt.AgentRuntime, method)), method


def test_error_tree() -> None:
    E = agentrt
    assert issubclass(E.ConfigError, E.AgentRuntimeError)
    assert issubclass(E.BudgetExceeded, E.RunError)
    assert issubclass(E.RunError, E.AgentRuntimeError)
    for cls in (E.InvalidDecision, E.ApprovalExpired, E.NotAuthorized, E.AlreadyDecided):
        assert issubclass(cls, E.ApprovalError)
    for cls in (E.ApprovalError, E.UnknownRun, E.RunBusy, E.IllegalTransition):
        assert issubclass(cls, E.AgentRuntimeError)


def test_statuses_and_decisions_are_str_enums() -> None:
    assert agentrt.RunStatus.AWAITING_APPROVAL == "awaiting_approval"
    assert agentrt.ApprovalStatus.APPROVED == "approved"
