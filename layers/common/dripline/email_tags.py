"""The SES message tags of a Dripline email, and reading them back from SES events.

A run is found from an event by its team and run id (the id names its owner, see
`runs.get_run`), so the team must come back exactly. SES tag values allow only
[A-Za-z0-9_-] and 256 characters: a team id that fits goes as it is in `team`; any
other team id also goes base64url-encoded, in 256-character pieces `team_b64_0`, ...
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

MAX_VALUE = 256
_PIECE = "team_b64_"


def tag_value(value: str) -> str:
    """SES tag values allow only [A-Za-z0-9_-], at most 256 characters."""
    return "".join(c if c.isascii() and c.isalnum() or c in "_-" else "_" for c in value)[:MAX_VALUE]


def email_tags(team_id: str, pipeline_id: str, run_id: str, step_number: int) -> list[dict[str, str]]:
    tags = [
        {"Name": "team", "Value": tag_value(team_id)},
        {"Name": "pipeline", "Value": tag_value(pipeline_id)},
        {"Name": "run", "Value": tag_value(run_id)},
        {"Name": "step", "Value": str(step_number)},
    ]
    if tag_value(team_id) != team_id:
        encoded = base64.urlsafe_b64encode(team_id.encode()).decode().rstrip("=")
        for n, start in enumerate(range(0, len(encoded), MAX_VALUE)):
            tags.append({"Name": f"{_PIECE}{n}", "Value": encoded[start : start + MAX_VALUE]})
    return tags


def team_of(tags: dict[str, Any]) -> str | None:
    """The team an event's tags (`{name: [value]}`) name, or None."""
    pieces = []
    while (piece := (tags.get(f"{_PIECE}{len(pieces)}") or [None])[0]) is not None:
        pieces.append(str(piece))
    if pieces:
        encoded = "".join(pieces)
        try:
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    team = (tags.get("team") or [None])[0]
    return str(team) if team else None
