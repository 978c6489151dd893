"""An eval report as JUnit XML, the format CI systems show test results in.

One <testsuite> for the dataset, one <testcase> per run ("case [2/3]" under --repeat):
a failed scorer is a <failure>, a run that could not finish an <error>. Each test case's
output names its thread id, so a failure leads to `agentrt trace THREAD`. Only elements
and attributes of the common JUnit schema are used, so strict readers take the file; and
characters XML 1.0 cannot hold (a terminal's colour codes in a scorer's reason, a bell in
a case name) are written out as ``\x1b``, so the file parses and nothing is lost.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from agentrt.evals.report import EvalReport, RunResult

__all__ = ["junit_xml", "write_junit"]

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""A character XML 1.0 forbids: C0 controls but tab and line breaks, lone surrogates,
U+FFFE and U+FFFF."""


def _xml_text(text: str) -> str:
    """``text`` as XML 1.0 may hold it: each character it forbids written out as Python
    writes it in a string (``\x07``, ``\ud800``)."""

    def written(found: re.Match[str]) -> str:
        code = ord(found.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _NOT_XML.sub(written, text)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: _xml_text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = _xml_text(text)
    return element


def _name(run: RunResult, repeat: int) -> str:
    return f"{run.case} [{run.repeat}/{repeat}]" if repeat > 1 else run.case


def junit_xml(report: EvalReport) -> ET.ElementTree[ET.Element]:
    """The report as a JUnit <testsuites> document."""
    failures = sum(1 for r in report.runs if r.error is None and not r.passed)
    errors = sum(1 for r in report.runs if r.error is not None)
    total = f"{sum(r.latency_seconds for r in report.runs):.3f}"
    counts = {"tests": str(len(report.runs)), "failures": str(failures), "errors": str(errors)}
    root = ET.Element("testsuites", {"name": "agentrt eval", "time": total, **counts})
    suite = _sub(root, "testsuite", name=report.dataset, skipped="0", time=total, **counts)
    properties = _sub(suite, "properties")
    _sub(properties, "property", name="eval_id", value=report.eval_id)
    _sub(properties, "property", name="pass_rate", value=f"{report.pass_rate:.4f}")
    for run in report.runs:
        case = _sub(
            suite,
            "testcase",
            classname=report.dataset,
            name=_name(run, report.repeat),
            time=f"{run.latency_seconds:.3f}",
        )
        if run.error is not None:
            _sub(case, "error", run.error, message=run.error, type="run")
        elif run.failures:
            _sub(
                case,
                "failure",
                "\n".join(f"{s.name}: {s.reason}" for s in run.failures),
                message="; ".join(f"{s.name}: {s.reason}" for s in run.failures),
                type=",".join(s.name for s in run.failures),
            )
        left = ", cancelled once scored" if run.cancelled else ""
        _sub(
            case,
            "system-out",
            f"thread {run.thread_id} ({run.status}{left}, {run.tokens} tokens, "
            f"${run.cost_usd:.6f}): agentrt trace {run.thread_id}",
        )
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report: EvalReport, path: str | Path) -> None:
    """Write the report's JUnit XML to ``path``."""
    junit_xml(report).write(path, encoding="utf-8", xml_declaration=True)
