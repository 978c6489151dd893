"""An eval report as JUnit XML, the format CI systems show test results in.

One <testsuite> for the dataset, one <testcase> per run ("case [2/3]" under --repeat):
a failed scorer is a <failure>, a run that could not finish an <error>. Each test case's
output names its thread id, so a failure leads to `agentrt trace THREAD`. Only elements
and attributes of the common JUnit schema are used, so strict readers take the file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from agentrt.evals.report import EvalReport, RunResult

__all__ = ["junit_xml", "write_junit"]


def _name(run: RunResult, repeat: int) -> str:
    return f"{run.case} [{run.repeat}/{repeat}]" if repeat > 1 else run.case


def junit_xml(report: EvalReport) -> ET.ElementTree[ET.Element]:
    """The report as a JUnit <testsuites> document."""
    failures = sum(1 for r in report.runs if r.error is None and not r.passed)
    errors = sum(1 for r in report.runs if r.error is not None)
    total = f"{sum(r.latency_seconds for r in report.runs):.3f}"
    counts = {"tests": str(len(report.runs)), "failures": str(failures), "errors": str(errors)}
    root = ET.Element("testsuites", {"name": "agentrt eval", "time": total, **counts})
    suite = ET.SubElement(
        root, "testsuite", {"name": report.dataset, "skipped": "0", "time": total, **counts}
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="eval_id", value=report.eval_id)
    ET.SubElement(properties, "property", name="pass_rate", value=f"{report.pass_rate:.4f}")
    for run in report.runs:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=report.dataset,
            name=_name(run, report.repeat),
            time=f"{run.latency_seconds:.3f}",
        )
        if run.error is not None:
            error = ET.SubElement(case, "error", message=run.error, type="run")
            error.text = run.error
        elif run.failures:
            message = "; ".join(f"{s.name}: {s.reason}" for s in run.failures)
            failure = ET.SubElement(
                case, "failure", message=message, type=",".join(s.name for s in run.failures)
            )
            failure.text = "\n".join(f"{s.name}: {s.reason}" for s in run.failures)
        out = ET.SubElement(case, "system-out")
        out.text = (
            f"thread {run.thread_id} ({run.status}, {run.tokens} tokens, "
            f"${run.cost_usd:.6f}): agentrt trace {run.thread_id}"
        )
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report: EvalReport, path: str | Path) -> None:
    """Write the report's JUnit XML to ``path``."""
    junit_xml(report).write(path, encoding="utf-8", xml_declaration=True)
