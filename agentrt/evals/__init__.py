"""Evals: run a dataset of cases on an app, score every run, gate CI on the result.

```python
from agentrt.evals import load_dataset, run_eval, regressions, write_junit

dataset = load_dataset("evals/refunds.yaml")        # DatasetError names case and field
report = run_eval(rt, dataset, concurrency=4, repeat=3, judge=judge_model)
report.pass_rate, report.cases(), report.scorers()
write_junit(report, "eval.xml"); report.save("baseline.json")
regressions(EvalReport.load("baseline.json"), report)

what_if(rt, recent_runs(rt, last=200), policy=Policy.from_file("candidate.yaml")).summary()
```

`agentrt eval` is the same from the command line. The runs are real runs in the app's
database (thread ids ``eval-<eval id>-<case number>-<case>-<n>``), so each can be shown
and traced; one left waiting once scored (at a gate, to retry) is cancelled, its requests
with it, so an eval leaves nothing a reviewer could approve into a real effect.
"""

from agentrt.evals.dataset import Case, Dataset, DatasetError, load_dataset, parse_dataset
from agentrt.evals.judge import Judge, JudgeBudget
from agentrt.evals.junit import junit_xml, write_junit
from agentrt.evals.report import (
    CaseSummary,
    EvalReport,
    RunResult,
    ScorerSummary,
    percentile,
    regressions,
)
from agentrt.evals.runner import arun_eval, run_eval
from agentrt.evals.scorers import Score
from agentrt.evals.trajectory import Call, Trajectory
from agentrt.evals.whatif import RunWhatIf, WhatIfReport, recent_runs, what_if

__all__ = [
    "Call",
    "Case",
    "CaseSummary",
    "Dataset",
    "DatasetError",
    "EvalReport",
    "Judge",
    "JudgeBudget",
    "RunResult",
    "RunWhatIf",
    "Score",
    "ScorerSummary",
    "Trajectory",
    "WhatIfReport",
    "arun_eval",
    "junit_xml",
    "load_dataset",
    "parse_dataset",
    "percentile",
    "recent_runs",
    "regressions",
    "run_eval",
    "what_if",
    "write_junit",
]
