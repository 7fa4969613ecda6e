"""--seed-demo: a ready team, pipeline and token, and curl lines to try them."""
from __future__ import annotations

import copy
from typing import Any

from dripline_local.client import LocalClient

DAY = 86400
DEMO_TEAM = "demo"

# Day 0: a welcome email; day 1: a follow-up task; day 3: a check-in email.
# (A step's delay counts from the step before it.)
WELCOME_PIPELINE: dict[str, Any] = {
    "name": "Welcome",
    "model_type": "contact",
    "automatic": True,
    "steps": [
        {
            "step_number": 1,
            "action_type": "send_email",
            "delay_seconds": 0,
            "message": "Hi {{ contact.first_name }}, welcome to Dripline!\n\nWe're glad you're here.",
            "data": {"subject": "Welcome, {{ contact.first_name }}!"},
        },
        {
            "step_number": 2,
            "action_type": "create_task",
            "delay_seconds": 1 * DAY,
            "message": "Give {{ contact.first_name }} a call ({{ contact.email }}).",
            "data": {"title": "Intro call", "assignee": "sales"},
        },
        {
            "step_number": 3,
            "action_type": "send_email",
            "delay_seconds": 2 * DAY,
            "message": "Hi {{ contact.first_name }}, how are your first days going?\n\nJust reply to this email.",
            "data": {"subject": "Checking in"},
        },
    ],
}


def welcome_pipeline() -> dict[str, Any]:
    return copy.deepcopy(WELCOME_PIPELINE)


def seed_demo(api_url: str, team_id: str = DEMO_TEAM) -> tuple[str, dict[str, Any]]:
    """Create the demo team's automatic Welcome pipeline; returns (token, pipeline)."""
    client = LocalClient(api_url).as_team(team_id)
    pipeline = client.call("POST", "/pipelines", welcome_pipeline(), expect=201)
    return client.token or "", pipeline


def instructions(api_url: str, token: str, pipeline: dict[str, Any], team_id: str = DEMO_TEAM) -> str:
    pid = pipeline.get("pipeline_id", "<pipeline_id>")
    auth = '-H "Authorization: Bearer $TOKEN"'
    return f"""
Seeded team "{team_id}" with the automatic pipeline "Welcome" ({pid}):
  day 0 a welcome email, day 1 an "Intro call" task, day 3 a check-in email.

Try it (copy-paste into another terminal):

  export DRIPLINE={api_url}
  export TOKEN={token}

  # Add a contact: it is enrolled in "Welcome" (its email goes out at the next tick)
  curl -s -X POST $DRIPLINE/contacts {auth} -H 'Content-Type: application/json' \\
       -d '{{"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"}}'

  # Fast-forward 4 days: every tick on the way runs
  curl -s -X POST $DRIPLINE/_local/clock -d '{{"advance_seconds": 345600}}'

  # What happened
  curl -s "$DRIPLINE/_local/emails?to=ada@example.com"
  curl -s $DRIPLINE/tasks {auth}
  curl -s "$DRIPLINE/runs?pipeline_id={pid}" {auth}
  curl -s $DRIPLINE/pipelines/{pid}/stats {auth}

  # More: run one tick now, read the clock, a token for another team
  curl -s -X POST $DRIPLINE/_local/tick
  curl -s $DRIPLINE/_local/clock
  curl -s -X POST $DRIPLINE/_local/token -d '{{"team_id": "acme"}}'
"""
