"""`dripline demo`: a scripted tour on an embedded local stack, over real HTTP.

Creates the Welcome pipeline and a webhook pipeline (to a receiver on 127.0.0.1 that
checks signatures; its step has a send window, 09:00-17:00 in each contact's time zone),
25 contacts spread over five zones, a deal pipeline (the second model type: an email to
the deal's owner, one to each of its contacts, a task) and three deals of those contacts,
fast-forwards 4 days, then shows what happened: emails, tasks, webhooks, deals, runs by
status and the pipelines' stats.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from dripline_local.client import LocalClient
from dripline_local.seed import welcome_pipeline
from dripline_local.webhook_receiver import Receiver

PEOPLE = [
    ("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper"), ("Edsger", "Dijkstra"), ("Barbara", "Liskov"),
    ("Donald", "Knuth"), ("Margaret", "Hamilton"), ("Dennis", "Ritchie"), ("Frances", "Allen"), ("Ken", "Thompson"),
    ("Radia", "Perlman"), ("John", "McCarthy"), ("Katherine", "Johnson"), ("Tim", "Berners-Lee"), ("Hedy", "Lamarr"),
    ("Claude", "Shannon"), ("Sophie", "Wilson"), ("Niklaus", "Wirth"), ("Shafi", "Goldwasser"), ("Tony", "Hoare"),
    ("Annie", "Easley"), ("Leslie", "Lamport"), ("Jean", "Sammet"), ("Guido", "van Rossum"), ("Adele", "Goldberg"),
]

# Half-hour and 45-minute offsets, both hemispheres: the webhook's send window is local to each.
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "Asia/Kathmandu"]
# (name, value, stage, owner): each deal gets two of the demo's contacts.
DEALS = [
    ("Analytical Engines renewal", 48000, "proposal", "sam@dripline.example"),
    ("Enigma audit", 12500, "negotiation", "kim@dripline.example"),
    ("COBOL migration", 90000, "qualified", "sam@dripline.example"),
]
BUSINESS_HOURS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00", "end": "17:00"}


def run_demo(contacts: int = 25, days: float = 4, out: Any = None) -> int:
    out = out or sys.stdout
    started = time.monotonic()

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    from dripline_local.stack import LocalStack

    say("Starting an embedded local stack (AWS emulator, tables from infra/template.yaml, API, stream poller, clock)…")
    with LocalStack(port=0, tick_seconds=0, route_stdout=True, lambda_output=None, quiet=True) as stack, Receiver() as receiver:
        say(f"  up in {time.monotonic() - started:.1f} s at {stack.api_url}; virtual clock {_short(stack.clock.now().isoformat())}")
        client = LocalClient(stack.api_url).as_team("demo")

        pipeline = client.call("POST", "/pipelines", welcome_pipeline(), expect=201)
        pid = pipeline["pipeline_id"]
        say(f'\nCreated the automatic pipeline "{pipeline["name"]}" ({pid}):')
        for step in pipeline["steps"]:
            say(f"  step {step['step_number']}: {step['action_type']:<12} after {_days(step['delay_seconds'])}")

        receiver.secrets = [client.call("GET", "/webhook-secret")["secret"]]
        client.call("POST", "/pipelines", _webhook_pipeline(receiver.url("/crm")), expect=201)
        say(f"Created the automatic pipeline \"Notify CRM\": a signed webhook to {receiver.url('/crm')} after 1 day,"
            " sent between 09:00 and 17:00 in the contact's time zone")

        deal_pipeline = client.call("POST", "/pipelines", _deal_pipeline(), expect=201)
        say(f'Created the automatic deal pipeline "{deal_pipeline["name"]}" (model_type deal):')
        for step in deal_pipeline["steps"]:
            to = f" to the deal's {step['data']['to']}" if step["action_type"] == "send_email" else ""
            say(f"  step {step['step_number']}: {step['action_type']:<12} after {_days(step['delay_seconds'])}{to}")

        say("")
        people = [PEOPLE[i % len(PEOPLE)] for i in range(contacts)]
        contact_ids = []
        for i, (first, last) in enumerate(people, 1):
            suffix = "" if i <= len(PEOPLE) else str(i)
            email = f"{first.lower()}.{last.lower().replace(' ', '')}{suffix}@example.com"
            body = {"email": email, "first_name": first, "last_name": last, "timezone": ZONES[i % len(ZONES)]}
            contact_ids.append(client.call("POST", "/contacts", body, expect=201)["contact_id"])
            _progress(out, "Creating contacts", i, contacts)
        say("")
        deal_ids = []
        for i, (name, value, stage, owner) in enumerate(DEALS):
            body = {"name": name, "value": value, "stage": stage, "owner_email": owner,
                    "contact_ids": contact_ids[2 * i : 2 * i + 2]}
            deal_ids.append(client.call("POST", "/deals", body, expect=201)["deal_id"])
        say(f"Created {len(deal_ids)} deals, each with two of those contacts")

        say(f"\nFast-forwarding {days:g} days (every processor tick on the way runs)…")
        before = time.monotonic()
        now = client.call("POST", "/_local/clock", {"advance_seconds": int(days * 86400)})["now"]
        say(f"  clock is now {_short(now)} ({time.monotonic() - before:.1f} s)")

        emails = client.call("GET", "/_local/emails")["items"]
        tasks = client.call("GET", "/tasks")["items"]
        runs = _all_runs(client, pid)
        stats = client.call("GET", f"/pipelines/{pid}/stats")
        deals = [client.call("GET", f"/deals/{d}") for d in deal_ids]
        deal_runs = [run for d in deal_ids for run in client.call("GET", f"/deals/{d}/runs")["items"]]
        deal_stats = client.call("GET", f"/pipelines/{deal_pipeline['pipeline_id']}/stats")

    say(f"\nEmails sent ({len(emails)})")
    _table(out, ["to", "subject", "first line", "sent (virtual)"], [
        [", ".join(e["to"]) if isinstance(e["to"], list) else e["to"], e.get("subject") or "", _first_line(e.get("text") or e.get("html") or ""), _short(e.get("sent_at") or "")]
        for e in emails
    ])
    say(f"\nTasks ({len(tasks)})")
    _table(out, ["title", "assignee", "description", "status", "created"], [
        [t.get("title", ""), t.get("assignee") or "", _first_line(t.get("description") or ""), t.get("status", ""), _short(t.get("created_at") or "")]
        for t in tasks
    ])
    keys = {d.headers.get("Idempotency-Key") for d in receiver.deliveries}
    verified = sum(d.verified for d in receiver.deliveries)
    say(f"\nWebhooks received ({len(receiver.deliveries)}): {verified} signatures verified, {len(keys)} distinct Idempotency-Keys")
    _table(out, ["idempotency key", "message"], [
        [d.headers.get("Idempotency-Key", ""), d.json.get("message", "")] for d in receiver.deliveries[:3]
    ])
    say(f"\nDeals ({len(deals)}) and their runs of \"{deal_pipeline['name']}\"")
    by_deal = {r["pipelineable_id"]: r for r in deal_runs}
    _table(out, ["deal", "value", "stage", "owner", "contacts", "run", "steps done"], [
        [d["name"], f"{d['value']:,}", d["stage"] or "", d["owner_email"] or "", str(len(d["contact_ids"])),
         by_deal[d["deal_id"]]["status"] if d["deal_id"] in by_deal else "(none)",
         str(len(by_deal[d["deal_id"]]["history"])) if d["deal_id"] in by_deal else "0"]
        for d in deals
    ])
    say("  deal pipeline: runs " + ", ".join(f"{k} {v}" for k, v in deal_stats.get("runs", {}).items())
        + "; emails " + ", ".join(f"{k} {v}" for k, v in deal_stats.get("emails", {}).items()))

    say(f"\nRuns by status ({len(runs)})")
    _table(out, ["status", "runs"], [[status, str(n)] for status, n in sorted(Counter(r["status"] for r in runs).items())])

    say("\nPipeline stats")
    counts = stats.get("runs", {})
    say("  runs: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    say(f"  completion rate {stats.get('completion_rate', 0):.0%}, step success rate {stats.get('success_rate', 0):.0%}")
    _table(out, ["step", "action", "executed", "succeeded", "failed", "avg lateness"], [
        [str(s["step_number"]), s["action_type"], str(s["executed"]), str(s["succeeded"]), str(s["failed"]), f"{s['avg_lateness_seconds']:.0f} s"]
        for s in stats.get("steps", [])
    ])
    say("  emails: " + ", ".join(f"{k} {v}" for k, v in stats.get("emails", {}).items()))

    say(f"\nDone in {time.monotonic() - started:.1f} s. `make run` starts the local stack for you to drive.")
    return 0


def _webhook_pipeline(url: str) -> dict[str, Any]:
    return {
        "name": "Notify CRM",
        "automatic": True,
        "steps": [{"step_number": 1, "action_type": "webhook", "delay_seconds": 86400,
                   "message": "{{ contact.email }} finished their first day", "data": {"url": url},
                   "send_window": BUSINESS_HOURS}],
    }


def _deal_pipeline() -> dict[str, Any]:
    """The second model type: an email to the deal's owner, one to each of its contacts, a task."""
    return {
        "name": "Deal follow-up",
        "model_type": "deal",
        "automatic": True,
        "steps": [
            {"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
             "message": "New deal {{ deal.name }}: {{ deal.value }} at {{ deal.stage }}",
             "data": {"subject": "New deal: {{ deal.name }}", "to": "owner"}},
            {"step_number": 2, "action_type": "send_email", "delay_seconds": 86400,
             "message": "Hi {{ contact.first_name }}, here is our proposal for {{ deal.name }}.",
             "data": {"subject": "Our proposal", "to": "contacts"}},
            {"step_number": 3, "action_type": "create_task", "delay_seconds": 2 * 86400,
             "message": "Chase {{ deal.name }} ({{ deal.value }}); owner {{ deal.owner_email }}",
             "data": {"title": "Chase {{ deal.name }}", "assignee": "sales"}},
        ],
    }


def _all_runs(client: LocalClient, pipeline_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    token = None
    while True:
        query = f"/runs?pipeline_id={pipeline_id}" + (f"&next_token={token}" if token else "")
        page = client.call("GET", query)
        runs += page["items"]
        token = page.get("next_token")
        if not token:
            return runs


def _progress(out: Any, label: str, done: int, total: int, width: int = 30) -> None:
    filled = int(width * done / total) if total else width
    bar = "█" * filled + "░" * (width - filled)
    end = "\n" if done == total and not _tty(out) else ""
    if _tty(out) or done == total:
        print(f"\r{label} {bar} {done}/{total}", end=end, file=out, flush=True)


def _tty(out: Any) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False


def _table(out: Any, headers: list[str], rows: list[list[str]], max_width: int = 44) -> None:
    if not rows:
        print("  (none)", file=out)
        return
    cells = [[_clip(c, max_width) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(("  " + "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths))).rstrip(), file=out)
    print("  " + "  ".join("─" * w for w in widths), file=out)
    for row in cells:
        print(("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths))).rstrip(), file=out)


def _clip(text: str, width: int) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _short(iso: str) -> str:
    """2026-03-02T09:01:00.000Z -> 2026-03-02 09:01"""
    return iso[:16].replace("T", " ") if iso else ""


def _days(seconds: int) -> str:
    if seconds == 0:
        return "0 (at once)"
    return f"{seconds / 86400:g} day" + ("" if seconds == 86400 else "s")
