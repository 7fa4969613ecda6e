"""The local dashboard (`GET /_local/dashboard`) and `dripline stats`: one team's pipelines
side by side, a per-step funnel for each, and the step lateness distribution.

Both read `GET /stats/pipelines` through the API (every page), so they show exactly what
an operator's API call returns, from the counters, never a scan of runs. The page is
server-rendered HTML with inline SVG: no script, no external asset (its
Content-Security-Policy forbids them), so it works offline and in a headless browser.
Every number carries a `data-*` attribute naming what it is, for tests and scrapers.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

PAGE_LIMIT = 100
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
BAR = 360  # width of the longest funnel bar (SVG user units)


def collect(get: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row of `GET /stats/pipelines`; `get(path)` answers a path's JSON body."""
    rows: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = get(f"/stats/pipelines?limit={PAGE_LIMIT}" + (f"&next_token={quote(token)}" if token else ""))
        rows.extend(page["items"])
        token = page.get("next_token")
        if not token:
            return rows


def lateness_totals(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The team's step lateness histogram: the pipelines' buckets added up, labelled."""
    totals: dict[Any, int] = {}
    for row in rows:
        for bucket in row["lateness_histogram"]:
            totals[bucket["le_seconds"]] = totals.get(bucket["le_seconds"], 0) + bucket["count"]
    return [(_bucket_label(bound), count) for bound, count in totals.items()]


def funnel(row: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(label, reached, succeeded) from enrollment through each step of the latest version."""
    stages = [("Enrolled", row["enrolled"], row["enrolled"])]
    for step in row["steps"]:
        stages.append((f"Step {step['step_number']} {step['action_type']}", step["executed"], step["succeeded"]))
    return stages


# --- HTML ---------------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}h3{font-size:14px;margin:16px 0 4px}
.meta{color:#5b6475;margin:0 0 16px}table{border-collapse:collapse}
th,td{padding:4px 10px;border-bottom:1px solid #e3e6ec;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f4f6f9;font-weight:600}
.empty{color:#5b6475}.funnels{display:flex;flex-wrap:wrap;gap:8px 40px}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}
"""


def render_html(rows: list[dict[str, Any]], *, team: str, now: datetime) -> str:
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Dripline: {escape(team)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Dripline pipelines: team <span data-team>{escape(team)}</span></h1>",
        f"<p class=\"meta\">As of <time data-now>{escape(_iso(now))}</time> (the local stack's clock), "
        "from <code>GET /stats/pipelines</code>: counters, not a scan.</p>",
        "<h2>Pipelines</h2>",
        _table_html(rows),
        "<h2>Funnel per pipeline</h2>",
        "<div class=\"funnels\">" + "".join(_funnel_svg(row) for row in rows) + "</div>" if rows
        else "<p class=\"empty\">No pipelines yet.</p>",
        "<h2>Step lateness</h2>",
        "<p class=\"meta\">Executed steps by how late they ran after their planned time (all pipelines).</p>",
        _lateness_svg(lateness_totals(rows)),
        "</body></html>",
    ]
    return "".join(parts)


COLUMNS = [
    ("enrolled", "Enrolled", str), ("active", "Active", str),
    ("completed", "Completed", str), ("failed", "Failed", str),
    ("completion_rate", "Completion", lambda v: _pct(v)), ("success_rate", "Step success", lambda v: _pct(v)),
    ("open_rate", "Open rate", lambda v: _pct(v)), ("click_rate", "Click rate", lambda v: _pct(v)),
    ("avg_lateness_seconds", "Avg lateness", lambda v: f"{v:g} s"), ("p99_lateness_seconds", "p99 lateness", lambda v: _p99(v)),
]


def _values(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "completed": row["runs"]["completed"], "failed": row["runs"]["failed"]}


def _table_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class=\"empty\">No pipelines yet.</p>"
    head = "<tr><th>Pipeline</th><th>Status</th>" + "".join(f"<th>{label}</th>" for _, label, _ in COLUMNS) + "</tr>"
    body = []
    for row in rows:
        values = _values(row)
        cells = "".join(f"<td data-metric=\"{name}\">{escape(show(values[name]))}</td>" for name, _, show in COLUMNS)
        body.append(
            f"<tr data-pipeline=\"{escape(row['pipeline_id'])}\"><td data-metric=\"name\">{escape(row['name'])}</td>"
            f"<td data-metric=\"status\">{escape(row['status'])}</td>{cells}</tr>"
        )
    return f"<table data-table=\"pipelines\"><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def _funnel_svg(row: dict[str, Any]) -> str:
    stages = funnel(row)
    top = max([reached for _, reached, _ in stages] + [1])
    height = 22
    label_width = 170
    width = label_width + BAR + 120
    bars = []
    for i, (label, reached, succeeded) in enumerate(stages):
        y = i * height
        reached_w = round(BAR * reached / top)
        ok_w = round(BAR * succeeded / top)
        bars.append(
            f"<g data-stage=\"{i}\" data-reached=\"{reached}\" data-succeeded=\"{succeeded}\">"
            f"<text x=\"0\" y=\"{y + 15}\">{escape(label)}</text>"
            f"<rect x=\"{label_width}\" y=\"{y + 3}\" width=\"{reached_w}\" height=\"16\" fill=\"#f2b8b5\"/>"
            f"<rect x=\"{label_width}\" y=\"{y + 3}\" width=\"{ok_w}\" height=\"16\" fill=\"#4c78a8\"/>"
            f"<text x=\"{label_width + max(reached_w, 1) + 6}\" y=\"{y + 15}\">{succeeded}"
            + (f" / {reached}" if reached != succeeded else "") + "</text></g>"
        )
    svg_height = len(stages) * height + 4
    return (
        f"<figure data-funnel=\"{escape(row['pipeline_id'])}\" style=\"margin:0\"><h3>{escape(row['name'])}</h3>"
        f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{svg_height}\" role=\"img\" "
        f"aria-label=\"Funnel of {escape(row['name'])}\">{''.join(bars)}</svg></figure>"
    )


def _lateness_svg(buckets: list[tuple[str, int]]) -> str:
    if not buckets or not any(count for _, count in buckets):
        return "<p class=\"empty\" data-lateness-empty>No steps executed yet.</p>"
    top = max(count for _, count in buckets)
    column, chart = 60, 160
    width, height = column * len(buckets) + 10, chart + 44
    bars = []
    for i, (label, count) in enumerate(buckets):
        x = 5 + i * column
        h = round(chart * count / top)
        bars.append(
            f"<g data-bucket=\"{escape(label)}\" data-count=\"{count}\">"
            f"<rect x=\"{x + 6}\" y=\"{chart + 16 - h}\" width=\"{column - 12}\" height=\"{h}\" fill=\"#4c78a8\"/>"
            f"<text x=\"{x + column / 2}\" y=\"{chart + 12 - h}\" text-anchor=\"middle\">{count}</text>"
            f"<text x=\"{x + column / 2}\" y=\"{chart + 34}\" text-anchor=\"middle\">{escape(label)}</text></g>"
        )
    return (
        f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" "
        f"aria-label=\"Step lateness distribution\" data-chart=\"lateness\">{''.join(bars)}</svg>"
    )


# --- terminal -----------------------------------------------------------------------------------

def render_text(rows: list[dict[str, Any]], *, team: str, now: datetime | None = None, width: int = 30) -> str:
    """The same as the page, for a terminal (`dripline stats`)."""
    lines = [f"Dripline pipelines: team {team}" + (f", as of {_iso(now)}" if now else "")]
    if not rows:
        return "\n".join([*lines, "", "No pipelines yet."]) + "\n"
    headers = ["Pipeline", "Status", *(label for _, label, _ in COLUMNS)]
    table = [[row["name"], row["status"], *(show(_values(row)[name]) for name, _, show in COLUMNS)] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *table)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines += ["", line(headers), line(["-" * w for w in widths]), *(line(r) for r in table)]
    for row in rows:
        stages = funnel(row)
        top = max([reached for _, reached, _ in stages] + [1])
        label_width = max(len(label) for label, _, _ in stages)
        lines += ["", f"Funnel: {row['name']}"]
        for label, reached, succeeded in stages:
            bar = "#" * round(width * succeeded / top) + "x" * (round(width * reached / top) - round(width * succeeded / top))
            shown = f"{succeeded}" + (f" / {reached}" if reached != succeeded else "")
            lines.append(f"  {label.ljust(label_width)}  {bar.ljust(width)}  {shown}")
    buckets = lateness_totals(rows)
    lines += ["", "Step lateness (all pipelines)"]
    top = max([count for _, count in buckets] + [1])
    for label, count in buckets:
        lines.append(f"  {label.rjust(8)}  {('#' * round(width * count / top)).ljust(width)}  {count}")
    return "\n".join(lines) + "\n"


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _p99(value: float | None) -> str:
    return "> 1 d" if value is None else f"\u2264 {value:g} s"


def _bucket_label(bound: int | None) -> str:
    if bound is None:
        return "> 1 d"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if bound >= size and bound % size == 0:
            return f"\u2264 {bound // size} {unit}"
    return f"\u2264 {bound} s"


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


# --- `dripline stats` ---------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="the API (default: the local stack's, http://127.0.0.1:3000)")
    parser.add_argument("--team", default="demo", help="the team (a local stack token is made for it; default demo)")
    parser.add_argument("--token", help="a bearer token to use instead (e.g. a deployed stack's Cognito token)")


def run_from_args(args: argparse.Namespace, out: Any = None) -> int:
    from dripline_local.client import ApiError, LocalClient

    out = out or sys.stdout
    try:
        client = LocalClient(args.url, args.token) if args.token else LocalClient(args.url).as_team(args.team)
        rows = collect(lambda path: client.call("GET", path, expect=200))
    except (ApiError, OSError) as exc:
        print(f"dripline stats: {exc}", file=sys.stderr)
        return 1
    out.write(render_text(rows, team="of the token" if args.token else args.team))
    return 0
