"""Request and response bodies. They validate requests and they are the OpenAPI document.

Request models forbid unknown fields, so a misspelt field is a 422 naming it rather
than a silent no-op. Rules that need the action registry or the tables (registered
action types, templates that compile, active pipelines) live in `dripline.api.service`.
"""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator

from dripline import records

MAX_DELAY_SECONDS = 31_536_000  # one year
MAX_MESSAGE_BYTES = 100 * 1024
MAX_DATA_BYTES = 10 * 1024
MAX_STEPS = 50
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_DEPTH = 8
MAX_NAME = 200
MAX_PIPELINE_IDS = 50
MAX_EMAIL = 254

# Pragmatic address syntax (what SES accepts): a dot-atom ASCII local part of at most 64
# characters, a dotted ASCII domain. The same pattern is in the OpenAPI document.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
EMAIL_PATTERN = (
    rf"^{_ATOM}(?:\.{_ATOM})*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_EMAIL = re.compile(EMAIL_PATTERN)
MAX_LOCAL_PART = 64
EMAIL_FIELD = dict(
    max_length=MAX_EMAIL,
    description=f"An email address: a dot-atom ASCII local part of at most {MAX_LOCAL_PART} characters, an ASCII domain",
    json_schema_extra={"pattern": EMAIL_PATTERN},
    examples=["ada@example.com"],
)

Timestamp = Field(description="ISO 8601, UTC, with `Z`", examples=["2026-03-02T09:00:00.000Z"])


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- validators shared by models ------------------------------------------------------------


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_email(value: str) -> str:
    if len(value) > MAX_EMAIL or not _EMAIL.fullmatch(value) or len(value.partition("@")[0]) > MAX_LOCAL_PART:
        raise ValueError("must be a valid email address")
    return value


def check_timezone(value: str | None) -> str | None:
    if value is not None and value not in _timezones():
        raise ValueError("must be an IANA time zone name, e.g. Europe/London")
    return value


def check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} keys")
    for key in value:
        if not key or len(key) > 128:
            raise ValueError("keys must be 1-128 characters")

    def walk(node: Any, depth: int) -> None:
        if depth > MAX_ATTRIBUTE_DEPTH:
            raise ValueError(f"values may nest at most {MAX_ATTRIBUTE_DEPTH} levels")
        if isinstance(node, float) and not math.isfinite(node):
            raise ValueError("numbers must be finite")
        if isinstance(node, (int, float)) and not isinstance(node, bool) and not _storable_number(node):
            raise ValueError("numbers must have at most 38 digits and a magnitude within 1e-130..1e125")
        if isinstance(node, dict):
            # DynamoDB refuses an empty attribute name at any depth (moto answered UpdateItem
            # with a body botocore cannot parse: a 500 the fuzzer found).
            if any(not key or len(key) > 128 for key in node):
                raise ValueError("keys must be 1-128 characters at every level")
            for child in node.values():
                walk(child, depth + 1)
        elif isinstance(node, list):
            for child in node:
                walk(child, depth + 1)

    walk(value, 1)
    return value


def _storable_number(number: int | float) -> bool:
    """DynamoDB numbers: up to 38 significant digits, magnitude 1e-130 .. 9.99e125."""
    if isinstance(number, int):
        return len(str(abs(number))) <= 38
    return number == 0 or 1e-130 <= abs(number) < 1e126


def check_pipeline_ids(value: list[str]) -> list[str]:
    if len(value) > MAX_PIPELINE_IDS:
        raise ValueError(f"at most {MAX_PIPELINE_IDS} pipelines")
    if any(not p or len(p) > 100 for p in value):
        raise ValueError("ids must be 1-100 characters")
    return list(dict.fromkeys(value))


# --- pipelines ---------------------------------------------------------------------------------


SEND_WINDOW_DOC = (
    "Run only inside this window, in the contact's `timezone` (else UTC): `days` (mon..sun, the days it opens), "
    "`start` and `end` as HH:MM wall times; `end` before `start` crosses midnight. A step due outside it is "
    "planned for the next opening, and re-planned (not attempted) if the window closed before it ran."
)
SEND_WINDOW_EXAMPLE = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
WAIT_UNTIL_DOC = (
    "Instead of `delay_seconds` (which must then be 0): wait for `until` (ISO date time; without offset it is the "
    "contact's wall time) or for the ISO date in attribute `until_attribute` plus `offset_seconds`. `if_missing` "
    "(`skip`, the default, or `run_now`) applies when the time is missing or already past when the step is planned."
)
WAIT_UNTIL_EXAMPLES = [
    {"until": "2031-03-01T09:00:00", "if_missing": "run_now"},
    {"until_attribute": "trial_ends_at", "offset_seconds": -86400, "if_missing": "skip"},
]


EXIT_WHEN_DOC = (
    "Ends a run `exited` (a conversion) once this holds for its record: on each change of the contact (through the "
    "contacts stream) and just before each step. A leaf `{\"field\"|\"attribute\": NAME, \"equals\": SCALAR}`, "
    "`{..., \"in\": [SCALAR, ...]}` or `{..., \"exists\": true|false}`; groups `{\"any\": [...]}` / `{\"all\": [...]}`. "
    "Fields of a contact: email, first_name, last_name, timezone. At most 4 levels of groups, 20 leaves, 4 KB. "
    "A run keeps its version's condition; on PUT, absent means the new version has none."
)
EXIT_WHEN_EXAMPLES = [
    {"attribute": "plan", "equals": "paid"},
    {"any": [{"attribute": "plan", "in": ["pro", "enterprise"]}, {"all": [{"attribute": "demo_booked", "exists": True},
                                                                          {"field": "timezone", "exists": True}]}]},
]


class StepIn(_Request):
    step_number: StrictInt = Field(ge=1, le=1_000_000, description="Order of the step; unique; gaps allowed")
    action_type: str = Field(
        min_length=1, max_length=100, description="A registered action: `send_email`, `create_task`, `webhook` or a custom one"
    )
    delay_seconds: StrictInt = Field(
        0, ge=0, le=MAX_DELAY_SECONDS, description="Wait before this step (after the previous one, or enrollment)"
    )
    message: str = Field("", description="A Jinja2 template (sandboxed), at most 100 KB")
    data: dict[str, Any] = Field(
        default_factory=dict, description="Action-specific (at most 10 KB): `subject` for send_email; `title`, `assignee`, `due_in_seconds` for create_task; `url` (https, public host) for webhook"
    )
    send_window: dict[str, Any] | None = Field(None, description=SEND_WINDOW_DOC, examples=[SEND_WINDOW_EXAMPLE])
    wait_until: dict[str, Any] | None = Field(None, description=WAIT_UNTIL_DOC, examples=WAIT_UNTIL_EXAMPLES)

    @field_validator("message")
    @classmethod
    def _message_size(cls, value: str) -> str:
        if len(value.encode()) > MAX_MESSAGE_BYTES:
            raise ValueError(f"at most {MAX_MESSAGE_BYTES} bytes")
        return value

    @field_validator("data")
    @classmethod
    def _data_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(json.dumps(value, allow_nan=False).encode())
        except ValueError as exc:
            raise ValueError("numbers must be finite") from exc
        if size > MAX_DATA_BYTES:
            raise ValueError(f"at most {MAX_DATA_BYTES} bytes as JSON")
        return value


class PipelineIn(_Request):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    model_type: Literal[records.NAMES] = Field(  # type: ignore[valid-type]
        "contact", description="The record type it runs on (README, \"Model types\"); fixed once created"
    )
    automatic: StrictBool | None = Field(
        None,
        description="true also makes it an automatic pipeline of the team. On POST, absent means false; "
        "on PUT, absent leaves the setting as it is.",
    )
    steps: list[StepIn] = Field(min_length=1, max_length=MAX_STEPS)
    exit_when: dict[str, Any] | None = Field(None, description=EXIT_WHEN_DOC, examples=EXIT_WHEN_EXAMPLES)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class StepOut(BaseModel):
    step_number: int
    action_type: str
    delay_seconds: int
    message: str
    data: dict[str, Any]
    send_window: dict[str, Any] | None = Field(None, description=SEND_WINDOW_DOC)
    wait_until: dict[str, Any] | None = Field(None, description=WAIT_UNTIL_DOC)


class PipelineOut(BaseModel):
    pipeline_id: str
    name: str
    model_type: str
    version: int
    automatic: bool
    status: Literal["active", "archived"]
    steps: list[StepOut]
    exit_when: dict[str, Any] | None = Field(None, description=EXIT_WHEN_DOC)
    created_at: str = Timestamp
    updated_at: str = Timestamp


class PipelinePage(BaseModel):
    items: list[PipelineOut]
    next_token: str | None = Field(None, description="Pass back as `next_token` for the next page; null at the end")


# --- trying a pipeline: preview, simulate, test send ---------------------------------------------

SAMPLE_CONTACT_DOC = (
    "A contact that exists only for this request (nothing is stored). Its unsubscribe link is an inert one "
    "(`.../unsubscribe/sample`): there is no contact to unsubscribe."
)


class SampleContact(_Request):
    email: str = Field(**EMAIL_FIELD)
    first_name: str | None = Field(None, max_length=MAX_NAME)
    last_name: str | None = Field(None, max_length=MAX_NAME)
    timezone: str | None = Field(None, description="An IANA time zone name", examples=["Europe/London"])
    attributes: dict[str, Any] = Field(default_factory=dict, description=f"Free-form, at most {MAX_ATTRIBUTES} keys")
    unsubscribed: StrictBool = False

    _email = field_validator("email")(check_email)
    _timezone = field_validator("timezone")(check_timezone)
    _attributes = field_validator("attributes")(check_attributes)


class TryIn(_Request):
    """Exactly one of `contact_id` (one of the team's contacts) and `contact` (an inline sample)."""

    contact_id: str | None = Field(None, min_length=1, max_length=100, description="One of the team's contacts")
    contact: SampleContact | None = Field(None, description=SAMPLE_CONTACT_DOC)


class PreviewIn(TryIn):
    pass


class FailureIn(_Request):
    step_number: StrictInt = Field(ge=1, le=1_000_000, description="The step that fails")
    times: StrictInt = Field(1, ge=1, le=100, description="Its first `times` attempts fail")
    retryable: StrictBool = Field(
        True, description="A transient failure (an SES throttle: retried with backoff) or a permanent one (fails the run)"
    )


class SimulateIn(TryIn):
    failures: list[FailureIn] = Field(
        default_factory=list, max_length=MAX_STEPS, description="Injected outcomes, e.g. step 2 fails twice"
    )


class StepPreviewOut(BaseModel):
    step_number: int
    action_type: str
    scheduled_at: str | None = Field(description="When the step is planned (ISO 8601); null if the run never reaches it")
    runs_at: str | None = Field(description="The processor tick that runs it (ticks are on the minute)")
    outcome: str = Field(
        description="What the processor would record: succeeded, skipped, failed; or passed_over (a wait-until "
        "skips it), not_reached (an earlier step fails the run)"
    )
    error: str | None = Field(description="Why it fails or is skipped, e.g. `empty_message`, `unsubscribed`")
    rendered: dict[str, Any] | None = Field(
        description="What it sends or creates: send_email `subject`, `text`, `html` (the exact MIME parts); "
        "create_task `title`, `description`, `assignee`, `due_at`; webhook `url`, `payload` (unsigned)"
    )


class PreviewOut(BaseModel):
    pipeline_id: str
    version: int
    start: str = Field(description="Enrollment time the plan counts from: now")
    steps: list[StepPreviewOut]


class AttemptOut(BaseModel):
    step_number: int
    action_type: str
    attempt: int = Field(description="1, then 2 ... while the step is retried")
    scheduled_at: str = Field(description="When the run was due (the plan, or the retry time)")
    executed_at: str = Field(description="The tick that ran it")
    outcome: Literal["succeeded", "skipped", "failed", "retry", "rescheduled"]
    error: str | None
    retry_in_seconds: int | None = Field(description="The backoff before the next attempt, for a retry")
    next_at: str | None = Field(description="When the run is due next; null once it ended")


class SimulationOut(BaseModel):
    pipeline_id: str
    version: int
    start: str = Field(description="Enrollment time on the virtual clock: now")
    status: Literal["completed", "failed", "cancelled"]
    ended_at: str | None
    attempts: list[AttemptOut]
    passed_over: list[int] = Field(description="Steps a wait-until passes over")
    not_reached: list[int] = Field(description="Steps after the one that ended the run")


class TestSendIn(_Request):
    to: str = Field(**{**EMAIL_FIELD, "description": "Must be the caller's own verified address (the token's `email`)"})
    contact_id: str | None = Field(None, min_length=1, max_length=100, description="Render for this contact")
    contact: SampleContact | None = Field(None, description=SAMPLE_CONTACT_DOC + " Default: one named by `to` only.")

    _to = field_validator("to")(check_email)


class TestSendOut(BaseModel):
    message_id: str = Field(description="SES's id of the test email")
    to: str
    subject: str = Field(description="As sent, `[TEST] ` first")


class AutomaticOut(BaseModel):
    pipeline_id: str
    model_type: str
    created_at: str = Timestamp


class AutomaticList(BaseModel):
    items: list[AutomaticOut]


# --- contacts --------------------------------------------------------------------------------


class ContactIn(_Request):
    email: str = Field(**EMAIL_FIELD)
    first_name: str | None = Field(None, max_length=MAX_NAME)
    last_name: str | None = Field(None, max_length=MAX_NAME)
    timezone: str | None = Field(None, description="An IANA time zone name", examples=["Europe/London"])
    attributes: dict[str, Any] = Field(default_factory=dict, description=f"Free-form, at most {MAX_ATTRIBUTES} keys")
    pipeline_ids: list[str] = Field(
        default_factory=list, description="Manual assignments: active pipelines of the team (422 otherwise)"
    )
    unsubscribed: StrictBool = False

    _email = field_validator("email")(check_email)
    _timezone = field_validator("timezone")(check_timezone)
    _attributes = field_validator("attributes")(check_attributes)
    _pipelines = field_validator("pipeline_ids")(check_pipeline_ids)


class ContactPatch(_Request):
    """Any subset of the fields. `null` clears first_name, last_name and timezone (and only those)."""

    email: str = Field(None, **EMAIL_FIELD)  # type: ignore[assignment]  # absent: unchanged; null: refused
    first_name: str | None = Field(None, max_length=MAX_NAME)
    last_name: str | None = Field(None, max_length=MAX_NAME)
    timezone: str | None = None
    attributes: dict[str, Any] = Field(None, description="Replaces the whole attribute map (`{}` clears it)")  # type: ignore[assignment]
    pipeline_ids: list[str] = Field(  # type: ignore[assignment]
        None, description="Replaces the manual set (`[]` clears it): added ids get runs, removed ids get their runs cancelled"
    )
    unsubscribed: StrictBool = Field(None, description="true cancels the contact's active runs and stops email")  # type: ignore[assignment]

    _email = field_validator("email")(check_email)
    _attributes = field_validator("attributes")(check_attributes)
    _pipelines = field_validator("pipeline_ids")(check_pipeline_ids)
    _timezone = field_validator("timezone")(check_timezone)


class ContactOut(BaseModel):
    contact_id: str
    email: str
    first_name: str | None
    last_name: str | None
    timezone: str | None
    attributes: dict[str, Any]
    pipeline_ids: list[str]
    unsubscribed: bool
    created_at: str = Timestamp
    updated_at: str = Timestamp


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_token: str | None = None


# --- deals ---------------------------------------------------------------------------------------

MAX_STAGE = 100
MAX_DEAL_CONTACTS = 50
DealValue = StrictInt | StrictFloat


def check_value(value: int | float | None) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if not _storable_number(value):
        raise ValueError("must have at most 38 digits and a magnitude within 1e-130..1e125")
    return value


def check_name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def check_contact_ids(value: list[str]) -> list[str]:
    if len(value) > MAX_DEAL_CONTACTS:
        raise ValueError(f"at most {MAX_DEAL_CONTACTS} contacts")
    if any(not c or len(c) > 100 for c in value):
        raise ValueError("ids must be 1-100 characters")
    return list(dict.fromkeys(value))


class DealIn(_Request):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    value: DealValue | None = Field(None, description="The deal's amount (a number)", examples=[12000])
    stage: str | None = Field(None, max_length=MAX_STAGE, examples=["proposal"])
    owner_email: str | None = Field(None, **EMAIL_FIELD)  # type: ignore[arg-type]
    contact_ids: list[str] = Field(
        default_factory=list, description=f"Contacts of the team (422 otherwise), at most {MAX_DEAL_CONTACTS}"
    )
    attributes: dict[str, Any] = Field(default_factory=dict, description=f"Free-form, at most {MAX_ATTRIBUTES} keys")

    _name = field_validator("name")(check_name)
    _value = field_validator("value")(check_value)
    _owner = field_validator("owner_email")(lambda v: None if v is None else check_email(v))
    _contacts = field_validator("contact_ids")(check_contact_ids)
    _attributes = field_validator("attributes")(check_attributes)


class DealPatch(_Request):
    """Any subset of the fields. `null` clears value, stage and owner_email (and only those)."""

    name: str = Field(None, min_length=1, max_length=MAX_NAME)  # type: ignore[assignment]  # absent: unchanged; null: refused
    value: DealValue | None = None
    stage: str | None = Field(None, max_length=MAX_STAGE)
    owner_email: str | None = Field(None, **EMAIL_FIELD)  # type: ignore[arg-type]
    contact_ids: list[str] = Field(None, description="Replaces the deal's contacts (`[]` clears them)")  # type: ignore[assignment]
    attributes: dict[str, Any] = Field(None, description="Replaces the whole attribute map (`{}` clears it)")  # type: ignore[assignment]

    _name = field_validator("name")(check_name)
    _value = field_validator("value")(check_value)
    _owner = field_validator("owner_email")(lambda v: None if v is None else check_email(v))
    _contacts = field_validator("contact_ids")(check_contact_ids)
    _attributes = field_validator("attributes")(check_attributes)


class DealOut(BaseModel):
    deal_id: str
    name: str
    value: int | float | None
    stage: str | None
    owner_email: str | None
    contact_ids: list[str]
    attributes: dict[str, Any]
    created_at: str = Timestamp
    updated_at: str = Timestamp


class DealPage(BaseModel):
    items: list[DealOut]
    next_token: str | None = None


# --- suppressions -------------------------------------------------------------------------


SuppressionReason = Literal["unsubscribe", "bounce", "complaint", "manual"]


class SuppressionIn(_Request):
    email: str = Field(**EMAIL_FIELD)
    reason: SuppressionReason = Field("manual", description="Why; `manual` unless imported from elsewhere")

    _email = field_validator("email")(check_email)


class SuppressionOut(BaseModel):
    email: str = Field(description="The address as matched: trimmed and lowercased")
    reason: SuppressionReason = Field(description="unsubscribe link, hard bounce, complaint, or added through the API")
    created_at: str = Timestamp
    contact_id: str | None = Field(None, description="The contact that carried the address then, if known")


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]
    next_token: str | None = None


class AssignIn(_Request):
    pipeline_id: str = Field(min_length=1, max_length=100)


EmailEventName = Literal["delivered", "bounced", "complained", "opened", "clicked"]


class EmailEventAt(BaseModel):
    type: EmailEventName
    at: str = Timestamp


class MessageOut(BaseModel):
    """One email SES accepted for the contact, from SES's own events."""

    message_id: str = Field(description="SES's message id")
    run_id: str
    pipeline_id: str
    step_number: int | None = Field(description="The step that sent it (from the email's `step` tag)")
    sent_at: str = Field(description="When SES accepted it (ISO 8601, UTC, with `Z`)", examples=["2026-03-02T09:00:00.000Z"])
    latest_event: EmailEventAt | None = Field(description="The most recent SES event after acceptance; null before any")
    events: dict[EmailEventName, str] = Field(description="Each kind of SES event seen, with when it first happened (a second open or a redelivered event changes nothing)")


class MessagePage(BaseModel):
    items: list[MessageOut] = Field(description="Newest first")
    next_token: str | None = None


# --- runs --------------------------------------------------------------------------------------

RunStatusName = Literal["pending", "running", "completed", "failed", "cancelled", "exited"]


class HistoryOut(BaseModel):
    step_number: int
    action_type: str
    outcome: Literal["succeeded", "failed", "skipped"]
    scheduled_at: str = Timestamp
    executed_at: str = Timestamp
    attempt: int = Field(description="Which attempt at the step this was (1 unless retried)")
    detail: dict[str, Any] | None
    error: str | None


class ExitMatchOut(BaseModel):
    path: str = Field(description="Where in the version's exit_when it held: `exit_when`, `exit_when.any[1]` ...",
                      examples=["exit_when.any[0]"])
    condition: dict[str, Any] | None = Field(description="The condition at that path (from the run's pipeline version)")


class RunOut(BaseModel):
    run_id: str
    pipeline_id: str
    pipeline_version: int
    pipelineable_type: str
    pipelineable_id: str
    source: Literal["automatic", "manual"]
    status: RunStatusName
    current_step: int | None = Field(description="The last step executed; null before the first")
    next_step_number: int | None
    next_step_at: str | None = Timestamp
    created_at: str = Timestamp
    updated_at: str = Timestamp
    completed_at: str | None = Timestamp
    last_error: str | None = Field(None, description="Why the run failed or was cancelled, or the last retried error")
    exit_match: ExitMatchOut | None = Field(None, description="Status `exited`: the exit condition that held")
    history: list[HistoryOut]


class RunList(BaseModel):
    items: list[RunOut]


class RunPage(BaseModel):
    items: list[RunOut]
    next_token: str | None = None


# --- tasks -------------------------------------------------------------------------------------

TaskStatusName = Literal["open", "done"]


class TaskOut(BaseModel):
    task_id: str
    contact_id: str | None = Field(description="The contact it is about; null for another record type's task")
    pipelineable_type: str = Field(description="The type of the record it is about: `contact`, `deal`")
    pipelineable_id: str
    run_id: str
    pipeline_id: str
    step_number: int
    title: str
    description: str | None
    assignee: str | None
    due_at: str | None = Timestamp
    status: TaskStatusName
    created_at: str = Timestamp


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_token: str | None = None


class TaskPatch(_Request):
    status: TaskStatusName


# --- stats -------------------------------------------------------------------------------------


class RunCounts(BaseModel):
    total: int
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int
    exited: int = Field(description="Runs ended by the pipeline's exit_when: its conversions")


class StepStats(BaseModel):
    step_number: int
    action_type: str
    executed: int
    succeeded: int
    failed: int
    skipped: int
    avg_lateness_seconds: float = Field(description="Mean of executed_at - scheduled next_step_at")


class EmailStats(BaseModel):
    """`sent` when SES accepts an email; the others from SES's events, each message once per kind."""

    sent: int
    delivered: int
    bounced: int
    complained: int
    opened: int
    clicked: int
    suppressed: int = Field(description="Email steps skipped because their address is on the suppression list")


class StatsOut(BaseModel):
    runs: RunCounts
    completion_rate: float = Field(description="completed / runs that ended (completed + failed + cancelled + exited)")
    conversion_rate: float = Field(description="exited / all runs (`runs.total`): the share that met the exit condition")
    success_rate: float = Field(description="succeeded step executions / all step executions")
    steps: list[StepStats] = Field(description="One row per step of the latest version (counters are by step_number)")
    emails: EmailStats = Field(
        description="Email counters: `sent` when SES accepted the email; delivered, bounced, complained, opened "
        "and clicked from SES's events (each message counted once per kind; they arrive seconds to days later)."
    )


class LatenessBucket(BaseModel):
    le_seconds: int | None = Field(description="Upper bound of the bucket in seconds; null: later than the last bound")
    count: int


class PipelineComparison(StatsOut):
    """One pipeline's row in `GET /stats/pipelines`: its Stats plus the figures that compare pipelines."""

    pipeline_id: str
    name: str
    status: Literal["active", "archived"]
    enrolled: int = Field(description="Runs ever created (runs.total)")
    active: int = Field(description="Runs pending or running now")
    open_rate: float = Field(description="opened / delivered (SES events; 0.0 before any delivery)")
    click_rate: float = Field(description="clicked / delivered")
    avg_lateness_seconds: float = Field(description="Mean lateness of every recorded step")
    p99_lateness_seconds: float | None = Field(
        description="The 99th percentile of step lateness is at most this (the bound of its histogram bucket); "
        "null when it is past the last bound"
    )
    lateness_histogram: list[LatenessBucket] = Field(description="Recorded steps by lateness, one row per bucket")


class PipelineComparisonPage(BaseModel):
    items: list[PipelineComparison] = Field(description="The team's pipelines, in the order of `GET /pipelines`")
    next_token: str | None = None


class ErrorPattern(BaseModel):
    error_code: str = Field(description="What the error starts with, up to its first colon (`Throttling`, `delivery_unknown`)")
    action_type: str
    failed: int = Field(description="Steps that failed for good")
    retried: int = Field(description="Failed attempts that were retried")
    recovered: int = Field(description="Steps that succeeded after failing with this error (their last failed attempt's)")
    first_seen: str | None = Timestamp
    last_seen: str | None = Timestamp
    example_run_id: str | None = Field(description="A run it happened to (the earliest hour's)")


class ErrorPatternList(BaseModel):
    since: str = Field(description="The start of the hour the counts begin with (hourly counters)", examples=["2026-03-02T09:00:00.000Z"])
    items: list[ErrorPattern] = Field(description="Most frequent first (failed + retried)")


class Health(BaseModel):
    status: Literal["ok"]
