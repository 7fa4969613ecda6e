"""Properties of the step engine (hypothesis): whatever sequence of outcomes a run meets,
the state machine's invariants hold.

They hold whether the next step is planned from the execution time or from the step's
planned time: both are never earlier than the step's scheduled time.
"""
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from dripline import engine
from dripline.domain import Outcome, PipelineSpec, RunStatus, Step
from dripline.engine import ActionResult

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
MAX_ATTEMPTS = 4

step_numbers = st.lists(st.integers(min_value=1, max_value=50), min_size=0, max_size=6, unique=True).map(sorted)
delays = st.integers(min_value=0, max_value=30 * 86400)


@st.composite
def pipelines(draw):
    numbers = draw(step_numbers)
    steps = tuple(Step(n, draw(st.sampled_from(["send_email", "create_task"])), draw(delays)) for n in numbers)
    return PipelineSpec("acme", "p", 1, "P", "contact", steps)


results = st.one_of(
    st.just(ActionResult.succeeded()),
    st.just(ActionResult.skipped("unsubscribed")),
    st.just(ActionResult.failed("throttled", retryable=True)),
    st.just(ActionResult.failed("rejected", retryable=False)),
    st.just(ActionResult.stop("contact_deleted")),
)
# (result, how late the attempt ran after it was due)
attempts = st.lists(st.tuples(results, st.integers(min_value=0, max_value=7200)), max_size=40)


def play(pipeline, outcomes, base=60, cap=3600):
    """Run the engine over `outcomes`; returns every (schedule, decision) and the history."""
    schedule = engine.enroll(pipeline, T0)
    failed_before = 0
    trace, history = [], []
    for result, lateness in outcomes:
        if schedule.status is not RunStatus.PENDING:
            break
        executed_at = schedule.next_step_at + timedelta(seconds=lateness)
        decision = engine.after_step(
            pipeline, schedule.next_step_number, result,
            scheduled_at=schedule.next_step_at, executed_at=executed_at, failed_attempts_before=failed_before,
            max_attempts=MAX_ATTEMPTS, retry_base_seconds=base, retry_max_seconds=cap,
        )
        trace.append((schedule, result, decision))
        if decision.history is not None:
            history.append(decision.history)
        schedule, failed_before = decision.schedule, decision.attempts
    return engine.enroll(pipeline, T0), trace, history


@settings(max_examples=300, deadline=None)
@given(pipelines(), attempts)
def test_any_sequence_of_outcomes_keeps_the_invariants(pipeline, outcomes):
    first, trace, history = play(pipeline, outcomes)
    numbers = [s.step_number for s in pipeline.steps]
    if not numbers:
        assert first.status is RunStatus.COMPLETED and trace == []
        return
    assert (first.next_step_number, first.next_step_at) == (numbers[0], T0 + timedelta(seconds=pipeline.steps[0].delay_seconds))
    for schedule, result, decision in trace:
        after = decision.schedule
        # attempts bounded; a step is recorded once: when it ends (not while retried)
        assert 0 <= decision.attempts <= MAX_ATTEMPTS
        assert (decision.history is None) == decision.retried
        if decision.retried:
            assert after.next_step_number == schedule.next_step_number and result.retryable
        if decision.history is not None:
            assert decision.history.step_number == schedule.next_step_number
            assert decision.history.attempt == decision.attempts or decision.attempts == 0
        # terminal states carry no next step; active ones a due time never before the last
        if after.status is RunStatus.PENDING:
            assert after.next_step_number in numbers and after.next_step_at >= schedule.next_step_at
        else:
            assert after.next_step_number is None and after.next_step_at is None
        if after.status is RunStatus.FAILED:
            assert decision.history.outcome is Outcome.FAILED
        if after.status is RunStatus.CANCELLED:
            assert result.cancel_run
        if after.status is RunStatus.COMPLETED:
            assert decision.history.step_number == numbers[-1] and decision.history.outcome is not Outcome.FAILED
    # steps run in ascending order, one history entry per recorded step, and only the
    # last entry may end the run
    recorded = [h.step_number for h in history]
    assert recorded == sorted(set(recorded)) and set(recorded) <= set(numbers)
    assert all(h.outcome is not Outcome.FAILED for h in history[:-1])
    assert recorded == numbers[: len(recorded)]  # no step is skipped over


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=60), st.integers(min_value=1, max_value=600), st.integers(min_value=1, max_value=86400))
def test_backoff_grows_and_is_capped(attempt, base, cap):
    now, following = engine.backoff_seconds(attempt, base, cap), engine.backoff_seconds(attempt + 1, base, cap)
    assert 0 <= now <= max(cap, 0) and now <= following
    if attempt >= 1:
        assert now == min(cap, base * 2 ** (attempt - 1))


@settings(max_examples=200, deadline=None)
@given(pipelines(), st.integers(min_value=1, max_value=8))
def test_a_step_failing_every_time_fails_the_run_after_exactly_max_attempts(pipeline, extra):
    throttled = [(ActionResult.failed("throttled", retryable=True), 0)] * (MAX_ATTEMPTS + extra)
    _, trace, history = play(pipeline, throttled)
    if not pipeline.steps:
        return
    assert len(trace) == MAX_ATTEMPTS
    assert trace[-1][2].schedule.status is RunStatus.FAILED and [h.attempt for h in history] == [MAX_ATTEMPTS]
