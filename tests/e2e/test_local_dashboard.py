"""GET /_local/dashboard in headless Chromium, and `dripline stats`, on a local stack of
their own: the numbers a person sees are the ones GET /stats/pipelines answers. Also: the
stack's Send events fill the contacts' delivery logs.

The screenshot goes to the test's temporary directory, or to docs/local-dashboard.png
with UPDATE_SCREENSHOTS=1 (how the README's was made)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.browser import browse
from tests.e2e.conftest import ROOT, running_stack
from tests.support import EMAIL_STEP, FOLLOW_UP_STEP, TASK_STEP

TEAM = "dashboard"
DAY = 86400


def cells(dom: str, pipeline_id: str) -> dict[str, str]:
    """The pipelines table's row of `pipeline_id`: metric -> the text Chromium rendered."""
    row = re.search(rf'<tr data-pipeline="{pipeline_id}">(.*?)</tr>', dom, re.S)
    assert row, f"no table row for {pipeline_id}"
    return dict(re.findall(r'<td data-metric="([a-z_0-9]+)">(.*?)</td>', row.group(1)))


def stages(dom: str, pipeline_id: str) -> list[tuple[int, int]]:
    figure = re.search(rf'<figure data-funnel="{pipeline_id}".*?</figure>', dom, re.S)
    assert figure, f"no funnel for {pipeline_id}"
    return [(int(r), int(s)) for r, s in re.findall(r'data-reached="(\d+)" data-succeeded="(\d+)"', figure.group(0))]


def test_the_dashboard_shows_what_the_api_counts(tmp_path, child_env):
    target = ROOT / "docs" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    with running_stack(tmp_path) as stack:
        api = stack.client(TEAM)
        welcome = api.call("POST", "/pipelines", {"name": "Welcome", "automatic": True,
                                                  "steps": [EMAIL_STEP, TASK_STEP, FOLLOW_UP_STEP]})
        tasks = api.call("POST", "/pipelines", {"name": "Sales calls & demos", "automatic": False,
                                                "steps": [{**TASK_STEP, "step_number": 1, "delay_seconds": 3600}]})
        people = [api.call("POST", "/contacts", {"email": f"p{i}@example.com", "first_name": f"P{i}",
                                                 "pipeline_ids": [tasks["pipeline_id"]] if i < 2 else []})
                  for i in range(5)]
        api.call("POST", "/_local/clock", {"advance_seconds": 120})  # the welcome emails go out
        api.call("PATCH", f"/contacts/{people[4]['contact_id']}", {"unsubscribed": True})  # one leaves
        api.call("POST", "/_local/clock", {"advance_seconds": 4 * DAY})
        rows = {row["pipeline_id"]: row for row in api.call("GET", "/stats/pipelines")["items"]}
        # The stack hands SES's Send events to ses_events after each tick, as EventBridge would.
        log = api.call("GET", f"/contacts/{people[0]['contact_id']}/messages")["items"]
        leaver_log = api.call("GET", f"/contacts/{people[4]['contact_id']}/messages")["items"]
        with urllib.request.urlopen(f"{stack.url}/_local/dashboard?team={TEAM}") as reply:
            headers = reply.headers
        dom = browse(f"{stack.url}/_local/dashboard?team={TEAM}", target / "local-dashboard.png", "1280,960")
        printed = subprocess.run(
            [sys.executable, "-m", "dripline_local.cli", "stats", "--url", stack.url, "--team", TEAM],
            cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=120, check=True,
        ).stdout

    assert [(m["step_number"], m["pipeline_id"], m["latest_event"]) for m in log] == [
        (3, welcome["pipeline_id"], None), (1, welcome["pipeline_id"], None)]  # newest first; the emulator delivers nothing
    assert log[1]["sent_at"] < log[0]["sent_at"] and [m["step_number"] for m in leaver_log] == [1]
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert not re.search(r"<(script|link|img)\b", dom) and not re.search(r'(src|href)="', dom)  # nothing external

    w, t = rows[welcome["pipeline_id"]], rows[tasks["pipeline_id"]]
    assert (w["enrolled"], w["active"], w["runs"]["completed"], w["runs"]["cancelled"]) == (5, 0, 4, 1)
    assert (t["enrolled"], t["active"], t["runs"]["completed"]) == (2, 0, 2)
    shown_w, shown_t = cells(dom, welcome["pipeline_id"]), cells(dom, tasks["pipeline_id"])
    assert shown_w["name"] == "Welcome" and shown_t["name"] == "Sales calls &amp; demos"  # escaped
    assert (shown_w["enrolled"], shown_w["active"], shown_w["completed"], shown_w["failed"]) == ("5", "0", "4", "0")
    assert (shown_w["completion_rate"], shown_w["success_rate"]) == ("80.0 %", "100.0 %")  # 4 of 5 ended runs completed
    assert shown_w["avg_lateness_seconds"] == f"{w['avg_lateness_seconds']:g} s"
    assert shown_w["p99_lateness_seconds"] == f"\u2264 {w['p99_lateness_seconds']:g} s"
    assert (shown_t["enrolled"], shown_t["completed"], shown_t["completion_rate"]) == ("2", "2", "100.0 %")

    # Funnels: enrolled, then each step of the latest version (reached, succeeded).
    assert stages(dom, welcome["pipeline_id"]) == [(5, 5), (5, 5), (4, 4), (4, 4)]
    assert stages(dom, tasks["pipeline_id"]) == [(2, 2), (2, 2)]
    # Lateness: every executed step once, in the buckets the API reports.
    buckets = [int(n) for n in re.findall(r'<g data-bucket="[^"]+" data-count="(\d+)"', dom)]
    api_buckets = [sum(r["lateness_histogram"][i]["count"] for r in rows.values()) for i in range(len(buckets))]
    assert buckets == api_buckets and sum(buckets) == 5 + 4 + 4 + 2

    # The terminal shows the same rows and funnels.
    assert re.search(r"^Welcome +active +5 +0 +4 +0 +80\.0 % +100\.0 %", printed, re.M), printed
    assert re.search(r"^Sales calls & demos +active +2 +0 +2 +0 +100\.0 %", printed, re.M), printed
    assert re.search(r"^  Step 2 create_task +#+ +4$", printed, re.M), printed
    assert f"team {TEAM}" in printed and "Step lateness" in printed
    assert Path(target / "local-dashboard.png").stat().st_size > 10_000
