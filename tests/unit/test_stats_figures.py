"""The pure parts of the operators' counters (dripline.storage.stats): error codes,
lateness buckets and the p99 read from them."""
import pytest

from dripline.storage import stats


@pytest.mark.parametrize(("error", "code"), [
    ("Throttling: Rate exceeded", "Throttling"),
    ("TooManyRequestsException: slow down", "TooManyRequestsException"),
    ("http_503", "http_503"),
    ("connection_failed: ConnectTimeout: x", "connection_failed"),
    ("delivery_unknown", "delivery_unknown"),
    (None, "unknown"),
    ("", "unknown"),
    # Prose: its numbers go, so one message with varying figures is one group.
    ("the subject is 1,204 characters after rendering (at most 998)", "the_subject_is_N_characters_after_rendering_at_most_N"),
    ("the subject is 2,000 characters after rendering (at most 998)", "the_subject_is_N_characters_after_rendering_at_most_N"),
])
def test_error_codes(error, code):
    assert stats.error_group(error, "send_email") == f"{code}|send_email"


def test_error_codes_are_bounded():
    assert len(stats.error_group("x" * 500, "webhook").split("|")[0]) == stats.ERROR_CODE_CHARS


@pytest.mark.parametrize(("ms", "bucket"), [(-5, "lat_1"), (0, "lat_1"), (1000, "lat_1"), (1001, "lat_5"),
                                            (90_000, "lat_120"), (86_400_000, "lat_86400"), (86_400_001, "lat_inf")])
def test_lateness_buckets(ms, bucket):
    assert stats.lateness_bucket(ms) == bucket


def histogram(counts):
    bounds = [*stats.LATENESS_BUCKETS, None]
    return [{"le_seconds": b, "count": counts.get(b, 0)} for b in bounds]


def test_p99_is_the_bound_of_the_bucket_holding_it():
    assert stats.percentile_bound(histogram({}), 0.99) == 0.0
    assert stats.percentile_bound(histogram({1: 99, 120: 1}), 0.99) == 1.0  # the 99th of 100 is on time
    assert stats.percentile_bound(histogram({1: 98, 120: 2}), 0.99) == 120.0
    assert stats.percentile_bound(histogram({1: 1, None: 1}), 0.99) is None  # past the last bound
