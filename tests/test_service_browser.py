"""The review page in a real browser: Debian's headless Chromium, driven by Playwright, on a
real `agentrt serve` process. An approver signs in, approves the demo's refund, and watches
the run finish; a screenshot is kept for a person to look at."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from agentrt.examples.refund_desk import GOAL, OPERATOR
from tests.serving import ROOT, serve, wait_for

pytestmark = pytest.mark.subprocess

APP = "agentrt.examples.refund_desk:build_runtime"
CHROMIUM = Path("/usr/bin/chromium")
# A person looks at the screenshots here (the directory is ignored by git).
KEPT = ROOT / "test-artifacts"


def make_key(db: Path, *args: str) -> str:
    """A key made the way an operator makes one: `agentrt keys create`."""
    made = subprocess.run(
        [sys.executable, "-m", "agentrt", "keys", "create", "--app", APP, "--db", str(db), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    return made.stdout.strip()


def test_an_approver_approves_the_refund_in_chromium_and_sees_the_run_finish(
    tmp_path: Path,
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; `make install` installs Debian's chromium")
    db = tmp_path / "agentrt.db"
    alice = make_key(
        db, "--id", "alice", "--tenant", "acme", "--role", "operator",
        *(f"--scope={s}" for s in OPERATOR.scopes),
    )  # fmt: skip
    bob = make_key(db, "--id", "bob", "--tenant", "acme", "--role", "refund-approver")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()

    with serve(APP, db) as server, server.client(alice) as api:
        started = api.post("/runs", json={"goal": GOAL})
        assert started.status_code == 202, started.text
        thread_id = started.json()["thread_id"]
        wait_for(api, thread_id, {"awaiting_approval"})

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
            )
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                # The pages' Content-Security-Policy allows no inline script: nothing the
                # page needs may be one (Chromium reports each refusal on the console).
                refused: list[str] = []
                page.on(
                    "console",
                    lambda m: (
                        refused.append(m.text) if "Content Security Policy" in m.text else None
                    ),
                )
                page.goto(f"{server.url}/ui")
                assert page.url.startswith(f"{server.url}/ui/login")
                page.fill("input[name=key]", bob)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{server.url}/ui")

                card = page.locator("article.approval", has_text="issue_refund")
                expect(card).to_have_count(1)
                expect(card.locator("pre.args")).to_contain_text('"amount": 89')
                expect(card).to_contain_text("Refunds over $50 need a refund approver.")
                page.screenshot(path=str(artifacts / "queue.png"), full_page=True)

                card.get_by_role("button", name="Approve", exact=True).click()
                expect(page.get_by_role("status")).to_contain_text("Approved")
                page.click(f"a[href='/ui/runs/{thread_id}']")
                page.wait_for_url(f"{server.url}/ui/runs/{thread_id}")
                # The page follows the run by itself until it ends.
                expect(page.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
                output = api.get(f"/runs/{thread_id}").json()["output"]
                assert output
                expect(page.locator("#run-output")).to_have_text(output)
                expect(page.locator(".steps")).to_contain_text(
                    "approval 2.0: issue_refund approved by bob"
                )
                page.screenshot(path=str(artifacts / "run.png"), full_page=True)

                # The runs page's status filter applies as soon as it is changed.
                page.goto(f"{server.url}/ui/runs")
                page.select_option("#status", "succeeded")
                page.wait_for_url(f"{server.url}/ui/runs?status=succeeded")
                expect(page.locator("table.runs")).to_contain_text(thread_id)
                assert refused == []
            finally:
                browser.close()

    KEPT.mkdir(exist_ok=True)
    for shot in ("queue.png", "run.png"):
        assert (artifacts / shot).stat().st_size > 10_000
        shutil.copy(artifacts / shot, KEPT / f"review-{shot}")


def test_the_run_page_shows_a_run_live_as_it_goes(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; `make install` installs Debian's chromium")
    db = tmp_path / "agentrt.db"
    slow = "tests.slow_desk_app:build_runtime"  # each model answer takes a second
    alice = make_key(
        db, "--id", "alice", "--tenant", "acme", "--role", "operator",
        *(f"--scope={s}" for s in OPERATOR.scopes),
    )  # fmt: skip
    with serve(slow, db) as server, server.client(alice) as api, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/ui")
            page.fill("input[name=key]", alice)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{server.url}/ui")
            started = api.post("/runs", json={"goal": GOAL})
            thread_id = started.json()["thread_id"]
            page.goto(f"{server.url}/ui/runs/{thread_id}")
            # Pushed by the event stream while the model thinks: no reload draws these. A
            # tool call is shown only live, to a page already listening: the second plan
            # step's, a model answer (a second) later than the first's, which a page still
            # loading on a busy machine can miss.
            feed = page.locator("#live-feed")
            expect(feed).to_contain_text('call 1.0: lookup_customer({"customer_id": "c-7"})')
            expect(feed).to_contain_text("Checking the customer")  # the model's words
            # At the gate the page is drawn again, with the request to decide.
            expect(page.locator("#run-status")).to_have_text("awaiting_approval")
            expect(page.locator("article.approval")).to_have_count(1)
        finally:
            browser.close()
