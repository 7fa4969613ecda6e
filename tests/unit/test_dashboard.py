"""The dashboard's rendering (dripline_local.dashboard): names are text, never markup, and
the figures with no data yet still render."""
from datetime import datetime, timezone

from dripline_local import dashboard

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
BOUNDS = [1, 5, 15, 30, 60, 120, 300, 900, 3600, 21600, 86400, None]


def row(name: str, **overrides):
    base = {
        "pipeline_id": "p1", "name": name, "status": "active", "enrolled": 3, "active": 1,
        "runs": {"total": 3, "pending": 1, "running": 0, "completed": 1, "failed": 1, "cancelled": 0},
        "completion_rate": 0.5, "success_rate": 0.75, "open_rate": 0.0, "click_rate": 0.0,
        "avg_lateness_seconds": 90000.0, "p99_lateness_seconds": None,
        "steps": [{"step_number": 1, "action_type": "send_email", "executed": 4, "succeeded": 3, "failed": 1,
                   "avg_lateness_seconds": 0.0}],
        "lateness_histogram": [{"le_seconds": b, "count": 4 if b is None else 0} for b in BOUNDS],
        "emails": {},
    }
    return {**base, **overrides}


def test_a_hostile_pipeline_name_is_escaped_in_the_page():
    page = dashboard.render_html([row('<script>alert(1)</script>"')], team="<acme>", now=NOW)
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in page
    assert "&lt;acme&gt;" in page


def test_failures_late_steps_and_no_data_render():
    page = dashboard.render_html([row("Welcome")], team="acme", now=NOW)
    assert '<td data-metric="p99_lateness_seconds">&gt; 1 d</td>' in page  # past the last bound
    assert 'data-reached="4" data-succeeded="3"' in page and '<g data-bucket="&gt; 1 d" data-count="4">' in page
    text = dashboard.render_text([row("Welcome")], team="acme")
    assert "  Step 1 send_email  " in text and "3 / 4" in text and "> 1 d" in text

    empty = dashboard.render_html([], team="acme", now=NOW)
    assert empty.count("No pipelines yet.") == 2 and "No steps executed yet." in empty
    assert dashboard.render_text([], team="acme").endswith("No pipelines yet.\n")


def test_every_page_is_read():
    pages = {"": {"items": [row("A")], "next_token": "t.1"}, "t.1": {"items": [row("B")], "next_token": None}}
    asked = []

    def get(path):
        asked.append(path)
        return pages[path.partition("next_token=")[2]]

    assert [r["name"] for r in dashboard.collect(get)] == ["A", "B"]
    assert asked == ["/stats/pipelines?limit=100", "/stats/pipelines?limit=100&next_token=t.1"]
