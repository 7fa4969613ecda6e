"""Table declarations (pynamodb). Keys mirror infra/template.yaml exactly.

Tenancy is in the keys: every partition key starts with the team id, so a query can
never cross teams. Table names and the endpoint are bound at run time by
`bind(settings)`; nothing here reads the environment.
"""
from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

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
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


# --- pipelines, their versions, automatic settings and stats (one table) -------------------
#
# sk layout within a team's partition:
#   PIPELINE#<id>             the pipeline's head: latest version, status
#   VERSION#<id>#<v:08d>      an immutable snapshot of the steps of one version
#   AUTO#<model_type>#<id>    "enroll every new <model_type> in this pipeline"
#   STATS#<id>                counters the engine maintains as runs move
#   EMAILEVENT#<msg>#<type>   one SES event already counted (expires after 30 days)


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


class EmailEvent(Model):
    """An SES event (delivery, bounce ...) of one message, recorded once: SES and
    EventBridge deliver at least once, and a redelivered event must not count twice."""

    class Meta(_Meta):
        table_name = "dripline-pipelines"

    team_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    pipeline_id = UnicodeAttribute()
    run_id = UnicodeAttribute()
    contact_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    occurred_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()


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


def email_event_sk(message_id: str, event_type: str) -> str:
    return f"EMAILEVENT#{message_id}#{event_type}"


def pipeline_sk(pipeline_id: str) -> str:
    return f"PIPELINE#{pipeline_id}"


def version_sk(pipeline_id: str, version: int) -> str:
    return f"VERSION#{pipeline_id}#{version:08d}"


def automatic_sk(model_type: str, pipeline_id: str = "") -> str:
    return f"AUTO#{model_type}#{pipeline_id}"


def stats_sk(pipeline_id: str) -> str:
    return f"STATS#{pipeline_id}"


# --- runs -----------------------------------------------------------------------------


class DueIndex(GlobalSecondaryIndex):
    """Sparse, write-sharded index of runs the processor may have to act on.

    Only `pending` and `running` runs carry `due_shard`; ending a run removes it, so the
    processor's work grows with due runs, never with all runs. `running` runs stay in it
    so that a run whose lease expired (its processor died) is found again.
    """

    class Meta:
        index_name = "due"
        projection = IncludeProjection(["status", "lease_expires_at"])

    due_shard = UnicodeAttribute(hash_key=True)
    next_step_at = UTCDateTimeAttribute(range_key=True)


class RunIdIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_run_id"
        projection = KeysOnlyProjection()

    run_id = UnicodeAttribute(hash_key=True)


class TeamRunsIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_team"
        projection = AllProjection()

    team_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class PipelineRunsIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_pipeline"
        projection = AllProjection()

    pipeline_key = UnicodeAttribute(hash_key=True)  # <team>#<pipeline_id>
    created_at = UTCDateTimeAttribute(range_key=True)


class HistoryEntry(MapAttribute):
    step_number = NumberAttribute()
    action_type = UnicodeAttribute()
    outcome = UnicodeAttribute()  # succeeded | failed | skipped
    scheduled_at = UTCDateTimeAttribute()
    executed_at = UTCDateTimeAttribute()
    attempt = NumberAttribute(default=1)
    detail = JSONAttribute(null=True)
    error = UnicodeAttribute(null=True)


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
    pipeline_key = UnicodeAttribute()
    pipeline_version = NumberAttribute()
    pipelineable_type = UnicodeAttribute()
    pipelineable_id = UnicodeAttribute()
    source = UnicodeAttribute()  # automatic | manual
    # What caused this enrollment: "insert" (the contact's creation) or "assign:<time>" (the
    # contact write that assigned the pipeline). A redelivered cause finds its run.
    enrollment_key = UnicodeAttribute()
    status = UnicodeAttribute()
    current_step = NumberAttribute(null=True)
    next_step_number = NumberAttribute(null=True)
    next_step_at = UTCDateTimeAttribute(null=True)
    due_shard = UnicodeAttribute(null=True)
    attempts = NumberAttribute(default=0)
    lease_owner = UnicodeAttribute(null=True)
    lease_expires_at = UTCDateTimeAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    history = ListAttribute(of=HistoryEntry, default=list)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    completed_at = UTCDateTimeAttribute(null=True)

    due_index = DueIndex()
    run_id_index = RunIdIndex()
    team_index = TeamRunsIndex()
    pipeline_index = PipelineRunsIndex()


def run_owner(team_id: str, pipelineable_type: str, pipelineable_id: str) -> str:
    return f"{team_id}#{pipelineable_type}#{pipelineable_id}"


# --- tasks ----------------------------------------------------------------------------


class ContactTasksIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_contact"
        projection = AllProjection()

    contact_key = UnicodeAttribute(hash_key=True)  # <team>#<contact_id>
    created_at = UTCDateTimeAttribute(range_key=True)


class Task(Model):
    class Meta(_Meta):
        table_name = "dripline-tasks"

    team_id = UnicodeAttribute(hash_key=True)
    task_id = UnicodeAttribute(range_key=True)
    contact_key = UnicodeAttribute()
    contact_id = UnicodeAttribute()
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
    PipelineHead: "pipelines_table",
    PipelineVersion: "pipelines_table",
    AutomaticPipeline: "pipelines_table",
    PipelineStats: "pipelines_table",
    EmailEvent: "pipelines_table",
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
