"""Pipeline versions: written with their head, all or nothing."""
import pytest
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from dripline import clock
from dripline.domain import Step
from dripline.errors import Conflict
from dripline.storage import pipelines
from dripline.storage.models import PipelineVersion
from tests.support import EMAIL_STEP, TASK_STEP, make_pipeline

TEAM = "acme"


def update(pipeline_id, steps):
    return pipelines.update_pipeline(
        TEAM, pipeline_id, name="Welcome v2", model_type="contact", steps=[Step.from_dict(s) for s in steps], now=clock.now()
    )


def test_a_failed_update_leaves_nothing_behind_and_can_be_retried(aws, monkeypatch):
    pipeline = make_pipeline(TEAM, [EMAIL_STEP])
    real_commit = TransactWrite._commit

    def throttled(self):
        raise TransactWriteError("throttled")

    monkeypatch.setattr(TransactWrite, "_commit", throttled)
    with pytest.raises(TransactWriteError):
        update(pipeline.pipeline_id, [EMAIL_STEP, TASK_STEP])
    monkeypatch.setattr(TransactWrite, "_commit", real_commit)

    assert [v.version for v in PipelineVersion.query(TEAM, PipelineVersion.sk.startswith("VERSION#"))] == [1]
    assert update(pipeline.pipeline_id, [EMAIL_STEP, TASK_STEP]).spec.version == 2


def test_concurrent_updates_one_wins_the_other_conflicts(aws, monkeypatch):
    pipeline = make_pipeline(TEAM, [EMAIL_STEP])
    stale_head = pipelines._head(TEAM, pipeline.pipeline_id)
    update(pipeline.pipeline_id, [EMAIL_STEP, TASK_STEP])  # the other writer got there first

    monkeypatch.setattr(pipelines, "_head", lambda *_: stale_head)
    with pytest.raises(Conflict):
        update(pipeline.pipeline_id, [TASK_STEP])

    monkeypatch.undo()
    latest = pipelines.get_pipeline(TEAM, pipeline.pipeline_id)
    assert latest.spec.version == 2 and [s.step_number for s in latest.spec.steps] == [1, 2]
