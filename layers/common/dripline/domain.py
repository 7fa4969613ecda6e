"""Domain values shared by the engine, storage and API: plain, immutable, no AWS."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from dripline.exits import ExitCondition
from dripline.wait_until import WaitUntil
from dripline.windows import SendWindow


class RunStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXITED = "exited"  # the pipeline's exit_when held for the record (a conversion)

    @property
    def active(self) -> bool:
        return self in (RunStatus.PENDING, RunStatus.RUNNING)


ACTIVE_STATUSES = (RunStatus.PENDING.value, RunStatus.RUNNING.value)
ENDED_STATUSES = tuple(s.value for s in RunStatus if not s.active)


class Source(str, Enum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


class Outcome(str, Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Step:
    step_number: int
    action_type: str
    delay_seconds: int
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    send_window: SendWindow | None = None  # due only while open, in the recipient's zone
    wait_until: WaitUntil | None = None  # instead of delay_seconds

    def to_dict(self) -> dict[str, Any]:
        """The stored and served form; the optional rules only when set (older versions have none)."""
        out = {
            "step_number": self.step_number,
            "action_type": self.action_type,
            "delay_seconds": self.delay_seconds,
            "message": self.message,
            "data": dict(self.data),
        }
        if self.send_window is not None:
            out["send_window"] = self.send_window.to_dict()
        if self.wait_until is not None:
            out["wait_until"] = self.wait_until.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Step":
        return cls(
            step_number=int(raw["step_number"]),
            action_type=str(raw["action_type"]),
            delay_seconds=int(raw.get("delay_seconds", 0)),
            message=str(raw.get("message") or ""),
            data=dict(raw.get("data") or {}),
            send_window=SendWindow.parse(raw["send_window"]) if raw.get("send_window") else None,
            wait_until=WaitUntil.parse(raw["wait_until"]) if raw.get("wait_until") else None,
        )


@dataclass(frozen=True)
class PipelineSpec:
    """One immutable version of a pipeline: what a run executes."""

    team_id: str
    pipeline_id: str
    version: int
    name: str
    model_type: str
    steps: tuple[Step, ...]  # ascending step_number
    exit_when: ExitCondition | None = None  # runs end `exited` once it holds for their record

    def step(self, step_number: int) -> Step | None:
        return next((s for s in self.steps if s.step_number == step_number), None)

    def first_step(self) -> Step | None:
        return self.steps[0] if self.steps else None

    def step_after(self, step_number: int) -> Step | None:
        return next((s for s in self.steps if s.step_number > step_number), None)


# The fields a template may name on each object of its context (`contact.first_name`,
# `pipeline.name`): saving a template with any other top-level field is a 422 listing
# these (dripline.templating.check). One entry per record type; `attributes` holds the
# record's free-form fields, which may be missing at render.
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("id", "email", "first_name", "last_name", "timezone", "attributes"),
    "deal": ("id", "name", "value", "stage", "owner_email", "contact_ids", "attributes"),
    "pipeline": ("name",),
}


@dataclass(frozen=True)
class ContactView:
    """What actions and templates may see of a contact."""

    team_id: str
    contact_id: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    unsubscribed: bool = False
    subscription_generation: int = 0  # bound into unsubscribe links (dripline.unsubscribe)
    suppressed: bool = False  # its address is on the team's suppression list: never emailed

    def template_context(self) -> dict[str, Any]:
        return {
            "id": self.contact_id,
            "email": self.email,
            "first_name": self.first_name or "",
            "last_name": self.last_name or "",
            "timezone": self.timezone or "",
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True)
class DealView:
    """What actions and templates may see of a deal."""

    team_id: str
    deal_id: str
    name: str
    value: int | float | None = None
    stage: str | None = None
    owner_email: str | None = None
    contact_ids: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)

    def template_context(self) -> dict[str, Any]:
        return {
            "id": self.deal_id,
            "name": self.name,
            "value": self.value,
            "stage": self.stage or "",
            "owner_email": self.owner_email or "",
            "contact_ids": list(self.contact_ids),
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True)
class StepRecord:
    """One recorded step of a run. `action_type` is not stored with the run (its pipeline
    version knows it); `storage.runs.history_of` fills it in for the API."""

    step_number: int
    outcome: str  # succeeded | failed | skipped
    scheduled_at: datetime
    executed_at: datetime
    attempt: int = 1
    error: str | None = None
    detail: dict[str, Any] | None = None
    action_type: str | None = None

    @property
    def lateness_ms(self) -> int:
        return max(0, round((self.executed_at - self.scheduled_at).total_seconds() * 1000))


@dataclass(frozen=True)
class ClaimedRun:
    """A run this invocation holds the lease on, as read back from the claim write."""

    owner: str
    run_id: str
    team_id: str
    pipeline_id: str
    pipeline_version: int
    pipelineable_type: str
    pipelineable_id: str
    step_number: int
    scheduled_at: datetime
    attempts: int
    lease_owner: str
    # True when the previous holder's lease expired mid-step: its outcome is unknown.
    reclaimed: bool
    # The steps recorded so far (the finish rewrites the history with one more).
    history: tuple[StepRecord, ...] = ()
    # The error of the step's last failed attempt (None on a first attempt).
    last_error: str | None = None
    # The id of the request or record that enrolled the run (its log lines carry it).
    correlation_id: str | None = None
