"""Pipelines, their immutable versions, and the team's automatic-pipeline settings."""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from dripline.domain import PipelineSpec, Step
from dripline.errors import Conflict, NotFound
from dripline.exits import ExitCondition
from dripline.storage.models import (
    AutomaticPipeline,
    PipelineHead,
    PipelineVersion,
    automatic_sk,
    pipeline_sk,
    version_sk,
)
from dripline.storage.util import is_condition_failure

TRANSACTION_CANCELLED = "TransactionCanceledException"


@dataclass(frozen=True)
class Pipeline:
    """The latest version of a pipeline, as the API shows it."""

    spec: PipelineSpec
    status: str
    automatic: bool
    created_at: datetime
    updated_at: datetime

    @property
    def pipeline_id(self) -> str:
        return self.spec.pipeline_id


def create_pipeline(
    team_id: str,
    *,
    name: str,
    model_type: str,
    steps: Sequence[Step],
    now: datetime,
    automatic: bool = False,
    exit_when: ExitCondition | None = None,
) -> Pipeline:
    """Head, first version and (if asked) the automatic setting, all or nothing."""
    pipeline_id = uuid.uuid4().hex
    head = PipelineHead(
        team_id,
        pipeline_sk(pipeline_id),
        pipeline_id=pipeline_id,
        name=name,
        model_type=model_type,
        version=1,
        status="active",
        created_at=now,
        updated_at=now,
    )
    with _transaction() as writes:
        writes.save(
            _version(team_id, pipeline_id, 1, name, model_type, steps, now, exit_when), condition=PipelineVersion.sk.does_not_exist()
        )
        writes.save(head, condition=PipelineHead.sk.does_not_exist())
        if automatic:
            writes.save(_automatic(team_id, pipeline_id, model_type, now), condition=AutomaticPipeline.sk.does_not_exist())
    return get_pipeline(team_id, pipeline_id)


def update_pipeline(
    team_id: str,
    pipeline_id: str,
    *,
    name: str,
    model_type: str,
    steps: Sequence[Step],
    now: datetime,
    automatic: bool | None = None,
    exit_when: ExitCondition | None = None,
) -> Pipeline:
    """A new version; runs already enrolled keep the version they started on."""
    head = _head(team_id, pipeline_id)
    if head.status != "active":
        raise Conflict("pipeline is archived")
    new_version = int(head.version) + 1
    # One transaction: a version written without its head would block every later update.
    try:
        with _transaction() as writes:
            writes.save(
                _version(team_id, pipeline_id, new_version, name, model_type, steps, now, exit_when),
                condition=PipelineVersion.sk.does_not_exist(),
            )
            writes.update(
                head,
                actions=[
                    PipelineHead.version.set(new_version),
                    PipelineHead.name.set(name),
                    PipelineHead.model_type.set(model_type),
                    PipelineHead.updated_at.set(now),
                ],
                condition=(PipelineHead.version == head.version) & (PipelineHead.status == "active"),
            )
    except TransactWriteError as exc:
        if exc.cause_response_code == TRANSACTION_CANCELLED:
            raise Conflict("pipeline was changed concurrently; retry") from exc
        raise
    if automatic is True:
        set_automatic(team_id, pipeline_id, model_type, now)
    elif automatic is False:
        unset_automatic(team_id, pipeline_id)
    return get_pipeline(team_id, pipeline_id)


def archive_pipeline(team_id: str, pipeline_id: str, now: datetime) -> None:
    """No new enrollments; no longer automatic. Active runs are the caller's decision."""
    head = _head(team_id, pipeline_id)
    unset_automatic(team_id, pipeline_id)
    if head.status != "archived":
        head.update(actions=[PipelineHead.status.set("archived"), PipelineHead.updated_at.set(now)])


def get_pipeline(team_id: str, pipeline_id: str) -> Pipeline:
    head = _head(team_id, pipeline_id)
    spec = get_version(team_id, pipeline_id, int(head.version))
    return _pipeline(head, spec, automatic=is_automatic(team_id, pipeline_id, head.model_type))


def list_pipelines(team_id: str, *, limit: int = 50, start_key: dict | None = None) -> tuple[list[Pipeline], dict | None]:
    """A page of the team's pipelines and the key to continue from (None at the end)."""
    heads = PipelineHead.query(
        team_id,
        PipelineHead.sk.startswith("PIPELINE#"),
        limit=limit,
        last_evaluated_key=start_key,
    )
    page = list(heads)
    automatic = {a.pipeline_id for a in AutomaticPipeline.query(team_id, AutomaticPipeline.sk.startswith("AUTO#"))}
    items = [
        _pipeline(head, get_version(team_id, head.pipeline_id, int(head.version)), automatic=head.pipeline_id in automatic)
        for head in page
    ]
    return items, heads.last_evaluated_key


def active_pipeline(team_id: str, pipeline_id: str) -> PipelineSpec | None:
    """The latest version of an active pipeline, or None when unknown or archived."""
    try:
        head = _head(team_id, pipeline_id)
    except NotFound:
        return None
    if head.status != "active":
        return None
    return get_version(team_id, pipeline_id, int(head.version))


def get_version(team_id: str, pipeline_id: str, version: int) -> PipelineSpec:
    """Versions are immutable, so they are cached for the life of the process."""
    return _cached_version(PipelineVersion.Meta.table_name, team_id, pipeline_id, version)


@lru_cache(maxsize=1024)
def _cached_version(table_name: str, team_id: str, pipeline_id: str, version: int) -> PipelineSpec:
    del table_name  # part of the cache key only: tests bind fresh tables
    try:
        item = PipelineVersion.get(team_id, version_sk(pipeline_id, version), consistent_read=True)
    except DoesNotExist as exc:
        raise NotFound(f"pipeline {pipeline_id} version {version}") from exc
    return PipelineSpec(
        team_id=team_id,
        pipeline_id=pipeline_id,
        version=int(item.version),
        name=item.name,
        model_type=item.model_type,
        steps=tuple(sorted((Step.from_dict(s) for s in item.steps), key=lambda s: s.step_number)),
        exit_when=ExitCondition.parse(item.exit_when) if item.exit_when else None,
    )


class BatchCache:
    """Pipeline heads and automatic lists read once per enrollment batch, not per record.

    A pipeline archived or made automatic while a batch runs is seen by the next batch,
    as if the batch's records had been handled a moment earlier.
    """

    def __init__(self) -> None:
        self._active: dict[tuple[str, str], PipelineSpec | None] = {}
        self._automatic: dict[tuple[str, str], list[str]] = {}

    def active_pipeline(self, team_id: str, pipeline_id: str) -> PipelineSpec | None:
        key = (team_id, pipeline_id)
        if key not in self._active:
            self._active[key] = active_pipeline(team_id, pipeline_id)
        return self._active[key]

    def automatic_ids(self, team_id: str, model_type: str) -> list[str]:
        key = (team_id, model_type)
        if key not in self._automatic:
            self._automatic[key] = [a.pipeline_id for a in list_automatic(team_id, model_type)]
        return self._automatic[key]


# --- automatic pipelines ------------------------------------------------------------------


def set_automatic(team_id: str, pipeline_id: str, model_type: str, now: datetime) -> AutomaticPipeline:
    """Idempotent: setting it twice keeps the first `created_at`."""
    head = _head(team_id, pipeline_id)
    if head.status != "active":
        raise Conflict("an archived pipeline cannot be automatic")
    item = _automatic(team_id, pipeline_id, model_type, now)
    try:
        item.save(condition=AutomaticPipeline.sk.does_not_exist())
    except PutError as exc:
        if not is_condition_failure(exc):
            raise
        return AutomaticPipeline.get(team_id, automatic_sk(model_type, pipeline_id))
    return item


def unset_automatic(team_id: str, pipeline_id: str) -> None:
    for item in AutomaticPipeline.query(team_id, AutomaticPipeline.sk.startswith("AUTO#")):
        if item.pipeline_id == pipeline_id:
            item.delete()


def list_automatic(team_id: str, model_type: str | None = None) -> list[AutomaticPipeline]:
    prefix = automatic_sk(model_type) if model_type else "AUTO#"
    return list(AutomaticPipeline.query(team_id, AutomaticPipeline.sk.startswith(prefix), consistent_read=True))


def is_automatic(team_id: str, pipeline_id: str, model_type: str) -> bool:
    try:
        AutomaticPipeline.get(team_id, automatic_sk(model_type, pipeline_id))
    except DoesNotExist:
        return False
    return True


# --- helpers ------------------------------------------------------------------------------


def _head(team_id: str, pipeline_id: str) -> PipelineHead:
    try:
        return PipelineHead.get(team_id, pipeline_sk(pipeline_id), consistent_read=True)
    except DoesNotExist as exc:
        raise NotFound(f"pipeline {pipeline_id} not found") from exc


def _transaction() -> TransactWrite:
    return TransactWrite(connection=PipelineHead._get_connection().connection)


def _version(
    team_id: str,
    pipeline_id: str,
    version: int,
    name: str,
    model_type: str,
    steps: Iterable[Step],
    now: datetime,
    exit_when: ExitCondition | None,
) -> PipelineVersion:
    return PipelineVersion(
        team_id,
        version_sk(pipeline_id, version),
        pipeline_id=pipeline_id,
        version=version,
        name=name,
        model_type=model_type,
        steps=[s.to_dict() for s in sorted(steps, key=lambda s: s.step_number)],
        exit_when=exit_when.to_dict() if exit_when is not None else None,
        created_at=now,
    )


def _automatic(team_id: str, pipeline_id: str, model_type: str, now: datetime) -> AutomaticPipeline:
    return AutomaticPipeline(
        team_id, automatic_sk(model_type, pipeline_id), pipeline_id=pipeline_id, model_type=model_type, created_at=now
    )


def _pipeline(head: PipelineHead, spec: PipelineSpec, *, automatic: bool) -> Pipeline:
    return Pipeline(
        spec=spec, status=head.status, automatic=automatic, created_at=head.created_at, updated_at=head.updated_at
    )
