"""Turn a `make bench` result (benchmarks/results/step_path.json) into the tables of
docs/performance.md: the measurements, the cost per million steps and the scaling
calculation, so the document's numbers are always those of the last run.

    .venv/bin/python -m benchmarks.report                 # print the Markdown
    .venv/bin/python -m benchmarks.report --write docs/performance.md
        # replaces what lies between the <!-- bench:begin --> and <!-- bench:end --> markers
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from benchmarks.step_path import RESULTS

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# List prices, us-east-1 (docs/performance.md, "Prices used"): on-demand throughput as
# cut by 50 % on 2024-11-01 (announced 2024-11-14).
DYNAMODB_WRU = 0.625 / 1e6  # on-demand, per write request unit
DYNAMODB_RRU = 0.125 / 1e6  # on-demand, per read request unit
WCU_HOUR = 0.00065  # provisioned
RCU_HOUR = 0.00013
PROVISIONED_UTILISATION = 0.7  # a typical auto-scaling target
LAMBDA_GB_S = 0.0000133334  # arm64
LAMBDA_REQUEST = 0.20 / 1e6
SFN_TRANSITION = 0.025 / 1000
SCHEDULER_INVOCATION = 1.00 / 1e6

# Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB.
VCPU_MB = 1769
TIMEOUT_S, MARGIN_S = 120, 15  # the processor's Timeout and CLAIM_MARGIN_SECONDS
PARTITION_WCU_S, PARTITION_RCU_S = 1000, 3000
# A Step Functions drip step: a Wait state and a Task state (SES SDK integration).
SFN_TRANSITIONS_PER_STEP = 2
# One schedule per step: the schedule, a Lambda invoke (128 MB, ~100 ms), and the state
# it must still keep in DynamoDB (one write, one strongly consistent read, each <= 1 KB).
SCHEDULER_LAMBDA_GB_S = 0.128 * 0.1


def money(value: float) -> str:
    return f"${value:,.2f}"


def find(rows: list[dict], prefix: str) -> dict | None:
    return next((r for r in rows if r["row"].startswith(prefix)), None)


def measurements(result: dict) -> list[str]:
    m = result["machine"]
    lines = [
        f"Measured {m['date']} on this machine: {m['cpus']} cores shared with other work, {m['platform']}, "
        f"Python {m['python']}, moto {m['moto']} as a server process (boto3 {m['boto3']}, pynamodb {m['pynamodb']}). "
        f"The whole run took {result['elapsed_seconds']:.0f} s.",
        "",
        "Per step (per contact for enrollment); each cell is **ours / floor**, then ours ÷ floor:",
        "",
        "| row | calls | write units | read units | CPU ms | steps/s | ÷ floor: calls · WU · CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        o, f, q = r["ours"], r["floor"], r["ours_over_floor"]

        def cell(key: str, digits: int = 2) -> str:
            return f"{o[key]:.{digits}f} / {f[key]:.{digits}f}" if o.get(key) is not None and f.get(key) is not None else "–"

        ratios = " · ".join(f"{q[k]:.1f}×" if q.get(k) else "–" for k in ("calls", "write_units", "cpu_ms"))
        lines.append(
            f"| {r['row']} | {cell('calls')} | {cell('write_units')} | {cell('read_units')} | {cell('cpu_ms', 1)} "
            f"| {cell('per_second', 0)} | {ratios} |"
        )
    lines += ["", "Calls per step by operation (ours):", "", "| row | calls by operation |", "|---|---|"]
    for r in result["rows"]:
        ops = ", ".join(f"{k} {v:g}" for k, v in r["ours"]["calls_by_operation"].items())
        lines.append(f"| {r['row']} | {ops} |")
    lines += ["", "Write units per step by table and index (ours):", "", "| row | write units |", "|---|---|"]
    for r in result["rows"]:
        units = ", ".join(f"{k} {v:g}" for k, v in r["ours"]["write_units_by_table"].items())
        lines.append(f"| {r['row']} | {units} |")
    by_step = next((r["write_units_by_step"] for r in result["rows"] if "write_units_by_step" in r), None)
    if by_step:
        lines += ["", "20-step pipeline, write units per step at each step: "
                  + ", ".join(f"{k}: {v['write_units']:g}" for k, v in by_step.items()) + "."]
    extra = [r for r in result["rows"] if "ticks_to_drain" in r or "wasted_conditional_writes_per_step" in r]
    if extra:
        lines += ["", "| backlog row | ticks to drain | steps per tick | workers per tick | wasted conditional writes per step |",
                  "|---|---|---|---|---|"]
        for r in extra:
            wasted = r.get("wasted_conditional_writes_per_step", r["ours"].get("refused_conditional_writes", 0))
            lines.append(f"| {r['row']} | {r.get('ticks_to_drain', 1)} | {r.get('steps_per_tick', r['units'])} "
                         f"| {r.get('workers_per_tick', '–')} | {wasted:g} |")
    enrollment = find(result["rows"], "enrollment")
    if enrollment and "per_run_created" in enrollment:
        p = enrollment["per_run_created"]
        lines += ["", f"Enrollment, write units per run created: ours {p['ours_write_units']:g}, floor {p['floor_write_units']:g}."]
    return lines


def step_cost(row: dict, memory_mb: int = 512) -> dict[str, float]:
    """Dollars per million steps of one row, on-demand and provisioned."""
    o = row["ours"]
    cpu_s = o["cpu_ms"] / 1000
    # CPU-bound: a step occupies memory_mb for cpu_s / (memory_mb / VCPU_MB) seconds, i.e.
    # cpu_s * VCPU_MB / 1024 GB-s, whatever the memory size.
    lambda_ = cpu_s * VCPU_MB / 1024 * LAMBDA_GB_S * 1e6
    on_demand = (o["write_units"] * DYNAMODB_WRU + o["read_units"] * DYNAMODB_RRU) * 1e6
    provisioned = (o["write_units"] * WCU_HOUR / 3600 + o["read_units"] * RCU_HOUR / 3600) / PROVISIONED_UTILISATION * 1e6
    return {"dynamodb": on_demand, "provisioned": provisioned, "lambda": lambda_}


def costs(result: dict) -> list[str]:
    rows = [r for r in result["rows"] if r["row"].split(":")[0].replace(",", "").split()[0].isdigit() or "step" in r["row"]]
    rows = [r for r in rows if "finished runs" in r["row"] or r["row"].startswith("20-step")]
    sfn = SFN_TRANSITIONS_PER_STEP * SFN_TRANSITION * 1e6
    scheduler = (SCHEDULER_INVOCATION + LAMBDA_REQUEST + SCHEDULER_LAMBDA_GB_S * LAMBDA_GB_S
                 + DYNAMODB_WRU + DYNAMODB_RRU) * 1e6
    lines = [
        "| per million email steps (SES excluded) | DynamoDB on-demand | Lambda arm64 | **total on-demand** | DynamoDB provisioned (70 % utilised) + Lambda |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        c = step_cost(r)
        lines.append(f"| Dripline, {r['row']} | {money(c['dynamodb'])} | {money(c['lambda'])} | **{money(c['dynamodb'] + c['lambda'])}** "
                     f"| {money(c['provisioned'] + c['lambda'])} |")
    lines += [
        f"| Step Functions Standard ({SFN_TRANSITIONS_PER_STEP} transitions per step: Wait + Task) | – | – | **{money(sfn)}** | – |",
        f"| EventBridge Scheduler, one schedule + one Lambda invoke per step, plus 1 WRU + 1 RRU of state | – | – | **{money(scheduler)}** | – |",
    ]
    return lines


def scaling(result: dict) -> list[str]:
    row = find(result["rows"], "10,000 finished runs") or find(result["rows"], "1,000 finished runs") or result["rows"][0]
    o = row["ours"]
    cpu_ms = o["cpu_ms"]
    by_table = o["write_units_by_table"]
    due_wu = sum(v for k, v in by_table.items() if k.endswith("/index/due")) or 1e-9
    due_ru = o["read_units"]  # an upper bound: every read of a step counted on the due index
    pipelines_wu = sum(v for k, v in by_table.items() if k.startswith("dripline-pipelines") and "/index/" not in k)
    budget_ms = (TIMEOUT_S - MARGIN_S) * 1000
    lines = [
        f"From the row \"{row['row']}\": {cpu_ms:g} CPU ms, {o['write_units']:g} WU "
        f"(of which {due_wu:g} on the `due` index and {pipelines_wu:g} on the pipelines table), {o['read_units']:g} RU per step.",
        "",
        "| mode | Lambda memory | one invocation (CPU-bound) | invocations per minute | due steps per minute | DynamoDB ceiling (per-partition limits) |",
        "|---|---|---|---|---|---|",
    ]
    per_shard_wcu = PARTITION_WCU_S * 60 / due_wu
    per_shard_rcu = PARTITION_RCU_S * 60 / max(due_ru, 1e-9)
    per_shard = min(per_shard_wcu, per_shard_rcu)
    # The pipeline's stats item is one partition: its writes per step bound one pipeline's rate.
    per_pipeline = PARTITION_WCU_S * 60 / pipelines_wu if pipelines_wu else math.inf
    for memory in (512, 1769):
        share = min(1.0, memory / VCPU_MB)  # Python runs on one vCPU at a time (the GIL)
        one = budget_ms * share / cpu_ms
        for shards in (1, 8, 16, 64):
            mode = "one invocation, no workers" if shards == 1 else f"fan-out, DueShards={shards}"
            ceiling = per_shard * shards
            lines.append(
                f"| {mode} | {memory} MB | {one:,.0f} steps | {shards} | **{min(one * shards, ceiling):,.0f}** "
                f"| {ceiling:,.0f} (due index: {per_shard:,.0f} per shard) |"
            )
    lines += [
        "",
        f"One pipeline's steps are also bounded by its stats item (one partition): "
        f"{per_pipeline:,.0f} steps per minute at {pipelines_wu:g} WU per step on the pipelines table.",
    ]
    return lines


def render(result: dict) -> str:
    sections = [
        "### Measurements", "", *measurements(result), "",
        "### Cost per million email steps", "", *costs(result), "",
        "### Due steps per minute", "", *scaling(result),
    ]
    return "\n".join(sections) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="docs/performance.md's tables from a bench result")
    parser.add_argument("--result", type=Path, default=RESULTS)
    parser.add_argument("--write", type=Path, help="a Markdown file with bench:begin/end markers to update")
    args = parser.parse_args(argv)
    markdown = render(json.loads(args.result.read_text()))
    if args.write is None:
        print(markdown)
        return 0
    text = args.write.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    args.write.write_text(text[:start] + "\n" + markdown + text[end:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
