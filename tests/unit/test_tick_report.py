"""What a tick reports about lateness (the StepLatenessP99 metric)."""
from dripline.processor import RunOutcome, TickReport


def test_lateness_p99_is_the_nearest_rank_of_the_ticks_steps():
    report = TickReport()
    for seconds in range(1, 201):  # 1 s .. 200 s late
        report.add(RunOutcome("pending", ("StepsSucceeded",), float(seconds)))
    report.add(RunOutcome("lost"))  # a lost claim ran no step: no lateness

    assert report.lateness_p99() == 198.0
    assert report.outcomes == {"pending": 200, "lost": 1} and report.events["StepsSucceeded"] == 200


def test_a_tick_without_steps_has_no_lateness():
    assert TickReport().lateness_p99() == 0.0
