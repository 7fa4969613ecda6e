"""Table declarations (pynamodb). Keys mirror infra/template.yaml exactly.

Tenancy is in the keys: every partition key starts with the team id, so a query can
never cross teams. Table names and the endpoint are bound at run time by
`bind(settings)`; nothing here reads the environment.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.constants import NUMBER, STRING
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from dripline.domain import StepRecord
from dripline.settings import Settings


class _Meta:
    region = "us-east-1"
    host = None
    max_retry_attempts = 3
    # The processor runs steps on a thread pool that shares one client.
    max_pool_connections = 32


# --- contacts -------------------------------------------------------------------------


class Contact(Model):
    """A person of a team. Its table's stream drives enrollment."""

    class Meta(_Meta):
        table_name = "dripline-contacts"

    team_id = UnicodeAttribute(hash_key=True)
    contact_id = UnicodeAttribute(range_key=True)
    email = UnicodeAttribute()
    first_name = UnicodeAttribute(null=True)
    last_name = UnicodeAttribute(null=True)
    timezone = UnicodeAttribute(null=True)
    attributes = MapAttribute(default=dict)
    # The manual pipeline assignments; automatic ones come from the team's settings.
    pipeline_ids = ListAttribute(of=UnicodeAttribute, default=list)
    unsubscribed = BooleanAttribute(default=False)
    # Moves on at each re-subscribe: unsubscribe links of an earlier generation stop working.
    subscription_generation = NumberAttribute(null=True)
    # The id of the request (or event) that wrote this version of the contact: the stream
    # record's correlation id, so enrollment's lines name their cause (dripline.observability).
    correlation_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


# --- deals ----------------------------------------------------------------------------


class Deal(Model):
    """A sales opportunity of a team: the second pipelineable type. Its own table and
    stream (README, "Model types"): the stream drives enrollment like the contacts'."""

    class Meta(_Meta):
        table_name = "dripline-deals"

    team_id = UnicodeAttribute(hash_key=True)
    deal_id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    value = NumberAttribute(null=True)
    stage = UnicodeAttribute(null=True)
    owner_email = UnicodeAttribute(null=True)
    # Contacts of the same team; a step with `to: contacts` emails each of them.
    contact_ids = ListAttribute(of=UnicodeAttribute, default=list)
    attributes = MapAttribute(default=dict)
    correlation_id = UnicodeAttribute(null=True)  # as a contact's: the cause of this version
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


# --- pipelines, their versions, automatic settings and stats (one table) -------------------
#
# sk layout within a team's partition:
#   PIPELINE#<id>             the pipeline's head: latest version, status
#   VERSION#<id>#<v:08d>      an immutable snapshot of the steps of one version
#   AUTO#<model_type>#<id>    "enroll every new <model_type> in this pipeline"
#   STATS#<id>                counters the engine maintains as runs move
#   ERRORS#<yyyy-mm-ddThh>    the team's failed/retried/recovered steps of that hour, by error code and action (expires after 90 days)
#   MESSAGE#<contact>#<sent_at>#<msg>   one email SES accepted, with its events (the delivery log)
#   DELIVERY#<run>#<step>     SES Send events of one email step (expires after 30 days)
#   WEBHOOKSECRET             the team's key for signing webhooks (dripline.storage.teams)
#   EMAIL#<address>           which contact holds a (normalised) address (dripline.storage.contacts)
#   SUPPRESSION#<address>     an address that must not be emailed (dripline.storage.suppressions)


class PipelineHead(Model):
    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    pipeline_id = UnicodeAttribute()
    name = UnicodeAttribute()
    model_type = UnicodeAttribute(default="contact")
    version = NumberAttribute()
    status = UnicodeAttribute(default="active")  # active | archived
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class PipelineVersion(Model):
    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    pipeline_id = UnicodeAttribute()
    version = NumberAttribute()
    name = UnicodeAttribute()
    model_type = UnicodeAttribute(default="contact")
    # [{step_number, action_type, delay_seconds, message, data}], ascending step_number.
    steps = JSONAttribute()
    # The version's exit condition as given (dripline.exits), absent when it has none.
    exit_when = JSONAttribute(null=True)
    created_at = UTCDateTimeAttribute()


class AutomaticPipeline(Model):
    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    pipeline_id = UnicodeAttribute()
    model_type = UnicodeAttribute(default="contact")
    created_at = UTCDateTimeAttribute()


class PipelineStats(Model):
    """Counters: runs_<status>, step_<n>_{executed,succeeded,failed,lateness_ms}, emails_<event>.

    Attribute names are dynamic, so updates go through `dripline.storage.stats`.
    """

    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class MessageRecord(Model):
    """One email SES accepted for a contact (the delivery log), with the time of each SES
    event seen for it. Written by ses_events only, off the step path: any event of the
    message creates it (events may arrive before the `Send` event). Each event time is
    set once, on the condition that it is absent, which is also what makes a
    redelivered event count once in the stats."""

    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    message_id = UnicodeAttribute()
    contact_id = UnicodeAttribute()
    pipeline_id = UnicodeAttribute()
    run_id = UnicodeAttribute()
    step_number = NumberAttribute(null=True)
    sent_at = UTCDateTimeAttribute()
    delivered_at = UTCDateTimeAttribute(null=True)
    bounced_at = UTCDateTimeAttribute(null=True)
    complained_at = UTCDateTimeAttribute(null=True)
    opened_at = UTCDateTimeAttribute(null=True)
    clicked_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute()


def message_sk(contact_id: str, sent_at: datetime | None = None, message_id: str = "") -> str:
    """Newest last within a contact; without `sent_at`, the prefix of all its messages."""
    if sent_at is None:
        return f"MESSAGE#{contact_id}#"
    return f"MESSAGE#{contact_id}#{sent_at.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%S.%f}#{message_id}"


class AddressClaim(Model):
    """One contact per (team, normalised address). Kept here, not in the contacts table,
    whose stream drives enrollment: a claim is no contact and must not reach it."""

    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    contact_id = UnicodeAttribute()
    claimed_at = UTCDateTimeAttribute()


class Suppression(Model):
    """An address the team must never email again: unsubscribed, bounced or complained."""

    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    email = UnicodeAttribute()  # normalised
    reason = UnicodeAttribute()  # unsubscribe | bounce | complaint | manual
    created_at = UTCDateTimeAttribute()
    contact_id = UnicodeAttribute(null=True)  # the contact that carried it then, if known


class DeliveryRecord(Model):
    """What is known of one email step's delivery, per (run, step): the SES Send events
    seen for it (ses_events adds them) and since when the processor has found its outcome
    unknown (the anchor of the settle window). See dripline.delivery."""

    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    run_id = UnicodeAttribute()
    step_number = NumberAttribute()
    # Message ids SES accepted for this step: a set, so a redelivered event adds nothing.
    message_ids = UnicodeSetAttribute(null=True)
    unknown_since = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute()


def delivery_sk(run_id: str, step_number: int) -> str:
    return f"DELIVERY#{run_id}#{step_number}"


class WebhookSecret(Model):
    """The team's webhook signing key; after a rotation the previous one stays valid a while."""

    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    secret = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute(null=True)
    previous_secret = UnicodeAttribute(null=True)
    previous_valid_until = UTCDateTimeAttribute(null=True)


WEBHOOK_SECRET_SK = "WEBHOOKSECRET"


# The processor's shard leases live in the pipelines table under a partition no team can
# have (team ids never hold "#"); see dripline.storage.shards.
PROCESSOR_PARTITION = "#processor"


class ShardLeases(Model):
    """One item: which invocation walks which due-index shard, until when. Its attributes
    are the shard names (dynamic), so dripline.storage.shards writes it with the client."""

    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


def pipeline_sk(pipeline_id: str) -> str:
    return f"PIPELINE#{pipeline_id}"


def version_sk(pipeline_id: str, version: int) -> str:
    return f"VERSION#{pipeline_id}#{version:08d}"


def automatic_sk(model_type: str, pipeline_id: str = "") -> str:
    return f"AUTO#{model_type}#{pipeline_id}"


def stats_sk(pipeline_id: str) -> str:
    return f"STATS#{pipeline_id}"


def errors_sk(at: datetime) -> str:
    """The team's error-pattern counters of the hour of `at`."""
    return f"ERRORS#{at.astimezone(timezone.utc):%Y-%m-%dT%H}"


ERRORS_END = "ERRORS#~"  # sorts after every hour


# --- runs -----------------------------------------------------------------------------
#
# A run item is rewritten by every claim and finish, and DynamoDB bills a write by the
# larger of the item's before and after images (1 unit per KB). So the item is kept
# under 1 KB for a 20-step run: attributes only the engine reads have short stored
# names, times it does not query by are epoch milliseconds, and the history is one
# compact string (see CompactHistoryAttribute). Its indexes project only what their
# queries read, so a claim writes no index and a finish moves only the due index.


class EpochMillisAttribute(Attribute[datetime]):
    """A UTC datetime stored as epoch milliseconds (8 bytes instead of a 31-byte string)."""

    attr_type = NUMBER

    def serialize(self, value: datetime) -> str:
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return str(round(value.timestamp() * 1000))

    def deserialize(self, value: str) -> datetime:
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)


_OUTCOME_CODES = {"succeeded": "s", "failed": "f", "skipped": "k"}
_OUTCOMES = {code: outcome for outcome, code in _OUTCOME_CODES.items()}
_ENTRY = re.compile(r"(\d+)([sfk])(-?\d+)\+(\d+)")


class CompactHistoryAttribute(Attribute[list]):
    """A run's step records in one string, about 16 bytes a step:

        <step><s|f|k><scheduled, epoch ms; later entries: ms after the previous one>+<lateness ms>

    entries joined by ";", each followed by `|[attempt, error, detail]` (JSON) only when
    one of those is not the default. Bounding the details is the writer's job
    (`runs.compact_history`)."""

    attr_type = STRING

    def serialize(self, value: list) -> str:
        parts, previous = [], 0
        for record in value:
            scheduled = round(record.scheduled_at.timestamp() * 1000)
            entry = f"{record.step_number}{_OUTCOME_CODES[record.outcome]}{scheduled - previous}+{record.lateness_ms}"
            if record.attempt != 1 or record.error is not None or record.detail is not None:
                entry += "|" + json.dumps([record.attempt, record.error, record.detail], separators=(",", ":"))
            parts.append(entry)
            previous = scheduled
        return ";".join(parts)

    def deserialize(self, value: str) -> list:
        records, previous = [], 0
        decoder = json.JSONDecoder()
        position = 0
        while position < len(value):
            head = _ENTRY.match(value, position)
            if head is None:
                raise ValueError(f"unreadable history at {position}")
            step, code, delta, lateness = head.groups()
            previous += int(delta)
            scheduled = datetime.fromtimestamp(previous / 1000, tz=timezone.utc)
            attempt, error, detail = 1, None, None
            position = head.end()
            if value.startswith("|", position):
                (attempt, error, detail), position = decoder.raw_decode(value, position + 1)
            records.append(
                StepRecord(int(step), _OUTCOMES[code], scheduled, scheduled + timedelta(milliseconds=int(lateness)), attempt, error, detail)
            )
            position += value.startswith(";", position)
        return records


class DueIndex(GlobalSecondaryIndex):
    """Sparse, write-sharded index of runs the processor may have to act on.

    Only `pending` and `running` runs carry `due_shard`; ending a run removes it, so the
    processor's work grows with due runs, never with all runs. `running` runs stay in it
    so that a run whose lease expired (its processor died) is found again. Keys only:
    the claim's condition on the base table decides, so a claim writes nothing here.
    """

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    next_step_at = UTCDateTimeAttribute(range_key=True)


class TeamRunsIndex(GlobalSecondaryIndex):
    """A team's runs, newest first; `pipeline_id` is projected to filter one pipeline's.
    Neither key nor projection changes after creation: claims and finishes write nothing here."""

    class Meta:
        index_name = "by_team"
        projection = IncludeProjection(["pipeline_id"])

    team_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class PipelineRun(Model):
    """One pipelineable (a contact today) moving through one pipeline version.

    The partition is the pipelineable, so all runs of a contact are read together with
    a strongly consistent query: that is what makes "one active run per (contact,
    pipeline)" decidable at enrollment time.
    """

    class Meta(_Meta):
        table_name = "dripline-runs"

    owner = UnicodeAttribute(hash_key=True)  # <team>#<pipelineable_type>#<pipelineable_id>
    run_id = UnicodeAttribute(range_key=True)
    team_id = UnicodeAttribute()
    pipeline_id = UnicodeAttribute()
    pipeline_version = NumberAttribute(attr_name="pv")
    source = UnicodeAttribute(attr_name="src")  # automatic | manual
    # What caused this enrollment: "insert" (the contact's creation) or "assign:<time>" (the
    # contact write that assigned the pipeline). A redelivered cause finds its run.
    enrollment_key = UnicodeAttribute(attr_name="ek")
    status = UnicodeAttribute()
    next_step_number = NumberAttribute(null=True, attr_name="ns")
    next_step_at = UTCDateTimeAttribute(null=True)
    due_shard = UnicodeAttribute(null=True)
    # Failed attempts of the next step; a claim adds one (its attempt), a finish sets it.
    attempts = NumberAttribute(default=0, attr_name="at")
    lease_owner = UnicodeAttribute(null=True, attr_name="lo")
    lease_expires_at = EpochMillisAttribute(null=True, attr_name="le")
    # The status a claim found: `running` means the previous holder's lease expired.
    claimed_from = UnicodeAttribute(null=True, attr_name="cf")
    # The token of the last create/finish/cancel written: lets a writer whose answer was
    # lost (and whose SDK retry then failed its condition) recognise its own write.
    write_token = UnicodeAttribute(null=True, attr_name="wt")
    last_error = UnicodeAttribute(null=True, attr_name="err")
    # Status `exited`: where the version's exit_when held (a path such as "exit_when.any[1]").
    exit_match = UnicodeAttribute(null=True, attr_name="xm")
    # The correlation id of the enrollment (an API request id, or a stream record's id; about
    # 20-40 bytes, written once at creation): every step's log lines carry it.
    correlation_id = UnicodeAttribute(null=True, attr_name="ci")
    history = CompactHistoryAttribute(default=list, attr_name="h")
    created_at = UTCDateTimeAttribute()
    updated_at = EpochMillisAttribute(attr_name="ua")
    completed_at = EpochMillisAttribute(null=True, attr_name="ca")

    due_index = DueIndex()
    team_index = TeamRunsIndex()

    @property
    def pipelineable_type(self) -> str:
        return self.owner.rsplit("#", 2)[1]

    @property
    def pipelineable_id(self) -> str:
        return self.owner.rsplit("#", 2)[2]

    @property
    def current_step(self) -> int | None:
        """The last step executed; None before the first."""
        return self.history[-1].step_number if self.history else None


def run_owner(team_id: str, pipelineable_type: str, pipelineable_id: str) -> str:
    return f"{team_id}#{pipelineable_type}#{pipelineable_id}"


# --- tasks ----------------------------------------------------------------------------


class ContactTasksIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_contact"
        projection = AllProjection()

    # <team>#<contact_id> for a contact's tasks; <team>#<type>#<id> for another type's
    # (dripline.storage.tasks.record_key): the tasks of one record, whatever its type.
    contact_key = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class Task(Model):
    class Meta(_Meta):
        table_name = "dripline-tasks"

    team_id = UnicodeAttribute(hash_key=True)
    task_id = UnicodeAttribute(range_key=True)
    contact_key = UnicodeAttribute()
    contact_id = UnicodeAttribute(null=True)  # set for a contact's task
    # The record the task is about; absent on tasks written before deals existed (contacts).
    pipelineable_type = UnicodeAttribute(null=True)
    pipelineable_id = UnicodeAttribute(null=True)
    run_id = UnicodeAttribute()
    pipeline_id = UnicodeAttribute()
    step_number = NumberAttribute()
    title = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    assignee = UnicodeAttribute(null=True)
    due_at = UTCDateTimeAttribute(null=True)
    status = UnicodeAttribute(default="open")  # open | done
    created_at = UTCDateTimeAttribute()

    contact_index = ContactTasksIndex()


ALL_MODELS: dict[type[Model], str] = {
    Contact: "contacts_table",
    Deal: "deals_table",
    PipelineHead: "pipelines_table",
    PipelineVersion: "pipelines_table",
    AutomaticPipeline: "pipelines_table",
    PipelineStats: "pipelines_table",
    MessageRecord: "pipelines_table",
    DeliveryRecord: "pipelines_table",
    AddressClaim: "pipelines_table",
    Suppression: "pipelines_table",
    WebhookSecret: "pipelines_table",
    ShardLeases: "pipelines_table",
    PipelineRun: "runs_table",
    Task: "tasks_table",
}


def bind(settings: Settings) -> None:
    """Point every model at the configured tables and endpoint (once per cold start)."""
    for model, setting in ALL_MODELS.items():
        model.Meta.table_name = getattr(settings, setting)
        model.Meta.region = settings.region
        model.Meta.host = settings.dynamodb_endpoint
        model._connection = None  # drop a client cached for other settings
