"""Policy benchmark: what one decision costs, and the two CEL libraries side by side.

Part 1 times ``Policy.evaluate`` for one refund action under an allow-all policy (the
anchor: scopes check and default only), and under policies of 10 and 200 rules shaped like
real ones: tool globs, effects, roles, tenants, scopes, and a CEL ``when`` on most of them.
Half the rules are about the action's tool, so their conditions run; the other half are
filtered out by ``match`` before any CEL runs.

Part 2 compiles and evaluates the same realistic conditions with the two CEL
implementations on PyPI: common-expression-language (module ``cel``, Rust-backed; what
agentrt uses) and cel-python (module ``celpy``, pure Python; installed by the ``bench``
extra). Evaluation includes turning the activation into each library's values, which a
policy engine must do for every action. It also records how each behaves on the cases a
policy meets: int against double, a missing key, a non-bool result, division by zero.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import cel
from harness import QUICK

from agentrt import Policy, Principal, tool
from agentrt.budget import Budget, empty_usage

__all__ = ["main"]

REPEATS = 1 if QUICK else 7


@tool(effect="irreversible", scopes=["payments:write"], cost_usd=0.01)
def issue_refund(order_id: str, amount: float, reason: str = "") -> dict[str, Any]:
    """Refund an order."""
    return {}


PRINCIPAL = Principal(
    "alice", roles=["operator"], tenant="acme", scopes=["orders:read", "payments:write"]
)
ARGS = {"order_id": "vip-42", "amount": 89.0, "reason": "arrived broken"}
RUN = {"thread_id": "t-1", "goal": "Refund order 42", "step_id": "2.0"}
USAGE = {**empty_usage(), "cost_usd": 0.12, "tool_calls": 3, "steps": 3}
BUDGET = Budget(max_cost_usd=0.5, max_tool_calls=20).to_dict()

# Conditions of the kind policy files hold, over each thing `when` sees.
CONDITIONS = [
    "args.amount > 50.0",
    'args.amount <= 500.0 && args.order_id.startsWith("vip-")',
    '"refund-approver" in principal.roles || principal.tenant == "globex"',
    "usage.cost_usd + tool.cost_usd > 0.8 * budget.max_cost_usd",
    'tool.effect == "irreversible" && size(args.reason) > 0 && run.step_id != "0.0"',
]


def _rules(count: int) -> list[dict[str, Any]]:
    """``count`` rules; every other one is about issue_refund (its condition runs)."""
    rules: list[dict[str, Any]] = []
    for i in range(count):
        about = i % 2 == 0
        match: dict[str, Any] = {"tools": ["issue_*" if about else f"tool_{i}_*"]}
        if i % 3 == 0:
            match["effects"] = ["write", "irreversible"]
        if i % 5 == 0:
            match["roles"] = ["operator", "admin"]
        if i % 7 == 0:
            match["scopes"] = ["payments:*"]
        # Conditions mostly false, as in a real file where few rules fire per action.
        when = CONDITIONS[i % len(CONDITIONS)]
        rules.append(
            {
                "id": f"rule-{i}",
                "match": match,
                "when": f"({when}) && args.amount > {1000 + i}.0" if i % 4 else when,
                "decision": ("allow", "require_approval", "deny")[i % 3],
                "reason": f"rule {i}",
            }
        )
    return rules


def _per_call(fn: Callable[[], object], calls: int) -> float:
    """Median seconds per call over REPEATS timed loops of ``calls`` calls."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - started) / calls)
    return statistics.median(times)


def decision_costs() -> list[tuple[str, int, float]]:
    """(policy, rules, seconds per decision) for allow-all, 10 and 200 rules."""
    policies = [
        ("allow-all", Policy.allow_all()),
        ("10 rules", Policy(_rules(10), name="ten")),
        ("200 rules", Policy(_rules(200), name="two-hundred")),
    ]
    results = []
    for label, policy in policies:
        calls = 2000 if len(policy.rules) < 50 else 100

        def decide(policy: Policy = policy) -> object:
            return policy.evaluate(
                issue_refund,
                "issue_refund",
                ARGS,
                PRINCIPAL,
                run=RUN,
                usage=USAGE,
                budget=BUDGET,
            )

        decide()  # warm up
        results.append((label, len(policy.rules), _per_call(decide, calls)))
    return results


ACTIVATION: dict[str, Any] = {
    "args": ARGS,
    "tool": {"name": "issue_refund", "effect": "irreversible", "cost_usd": 0.01, "scopes": []},
    "principal": PRINCIPAL.to_dict(),
    "run": RUN,
    "usage": USAGE,
    "budget": {k: v for k, v in BUDGET.items() if v is not None},
}

BEHAVIOUR = [
    ("int against double: `args.n > 2.5`, n=3", "args.n > 2.5", {"args": {"n": 3}}),
    ("missing key: `args.nope > 1`", "args.nope > 1", {"args": {}}),
    ("non-bool result: `args.amount`", "args.amount", {"args": {"amount": 5.0}}),
    ("int division by zero: `args.n / 0 > 1`", "args.n / 0 > 1", {"args": {"n": 3}}),
    ("double times int: `0.8 * args.n`", "0.8 * args.n > 1.0", {"args": {"n": 3}}),
    ("syntax error: `args.amount >`", "args.amount >", {"args": {}}),
]


def _outcome(run: Callable[[], object]) -> str:
    try:
        value = run()
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"raises {type(exc).__name__}: {first[:60]}"
    return f"returns {value!r}"


def cel_comparison() -> dict[str, Any] | None:
    """Compile and eval microseconds for each condition, and the behaviour table."""
    try:
        import celpy
    except ImportError:
        print("  cel-python is not installed: pip install -e '.[bench]' (make bench does)")
        return None
    env = celpy.Environment()

    def celpy_run(expr: str, activation: dict[str, Any]) -> object:
        return env.program(env.compile(expr)).evaluate(celpy.json_to_cel(activation))

    rows = []
    for expr in CONDITIONS:
        ours = cel.compile(expr)
        theirs = env.program(env.compile(expr))
        assert bool(ours.execute(ACTIVATION)) == bool(
            theirs.evaluate(celpy.json_to_cel(ACTIVATION))
        ), expr
        rows.append(
            (
                expr,
                _per_call(lambda e=expr: cel.compile(e), 300),
                _per_call(lambda e=expr: env.program(env.compile(e)), 30),
                _per_call(lambda p=ours: p.execute(ACTIVATION), 2000),
                _per_call(lambda p=theirs: p.evaluate(celpy.json_to_cel(ACTIVATION)), 100),
            )
        )
    behaviour = [
        (
            label,
            _outcome(lambda e=expr, a=act: cel.compile(e).execute(a)),
            _outcome(lambda e=expr, a=act: celpy_run(e, a)),
        )
        for label, expr, act in BEHAVIOUR
    ]
    return {"rows": rows, "behaviour": behaviour}


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


def main() -> str:
    """Run the policy benchmark, print its results, and return them as markdown."""
    costs = decision_costs()
    anchor = costs[0][2]
    for label, _, seconds in costs:
        print(f"  {label}: {_us(seconds)} us/decision, x{seconds / anchor:.1f} allow-all")
    lines = [
        "### Policy: cost per decision",
        "",
        "`Policy.evaluate` on one refund action (with run, usage and budget), median of "
        f"{REPEATS} timed loops. Half the rules are about the action's tool, so their CEL "
        "conditions run; the rest are filtered by `match` first.",
        "",
        "| policy | rules | us/decision | / allow-all |",
        "|---|---:|---:|---:|",
        *(f"| {label} | {n} | {_us(s)} | {s / anchor:.1f} |" for label, n, s in costs),
    ]
    comparison = cel_comparison()
    if comparison is None:
        lines += ["", "CEL comparison skipped: cel-python not installed (`.[bench]` extra)."]
        return "\n".join(lines)
    rows = comparison["rows"]
    for expr, cc, pc, ce, pe in rows:
        print(
            f"  {expr[:50]:50}  compile {_us(cc)} vs {_us(pc)} us, eval {_us(ce)} vs {_us(pe)} us"
        )
    total = [sum(r[i] for r in rows) for i in range(1, 5)]
    print(
        f"  cel-python / common-expression-language: compile x{total[1] / total[0]:.0f}, "
        f"eval x{total[3] / total[2]:.0f}"
    )
    lines += [
        "",
        "### Policy: CEL libraries",
        "",
        "Microseconds per condition, median of "
        f"{REPEATS} loops: `cel` = common-expression-language (agentrt's), `celpy` = "
        "cel-python. Eval includes converting the activation to the library's values.",
        "",
        "| condition | compile cel | compile celpy | eval cel | eval celpy |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| `{_cell(expr)}` | {_us(cc)} | {_us(pc)} | {_us(ce)} | {_us(pe)} |"
            for expr, cc, pc, ce, pe in rows
        ),
        f"| **all five** | {_us(total[0])} | {_us(total[1])} | {_us(total[2])} | {_us(total[3])} |",
        "",
        f"cel-python takes x{total[1] / total[0]:.0f} the compile time and "
        f"x{total[3] / total[2]:.0f} the eval time of common-expression-language.",
        "",
        "| case | common-expression-language | cel-python |",
        "|---|---|---|",
        *(
            f"| {label} | {_cell(ours)} | {_cell(theirs)} |"
            for label, ours, theirs in comparison["behaviour"]
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
