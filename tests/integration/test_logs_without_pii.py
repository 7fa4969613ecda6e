"""Issue 8, finding 6 / Build 5: no email address, name or message body in any log line.

Every log line of a full scenario (API, enrollment, processor with a failing template,
SES event, unsubscribe, delete) is captured: our logger's JSON lines as written (at DEBUG,
so nothing hides below INFO), and every other logger's records at INFO, the level the
functions run at. Then they are searched for the contact's address, names and message text.
"""
import io
import logging

import pytest

from dripline.observability import logger as dripline_logger
from tests import scenario
from tests.support import StreamReader


@pytest.fixture
def stream(aws):
    return StreamReader(aws.contacts_stream_arn)


@pytest.fixture
def json_lines():
    """What the functions' logger writes, formatted by its own (Powertools) formatter."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(dripline_logger.registered_formatter)
    std_logger = logging.getLogger(dripline_logger.name)
    std_logger.addHandler(handler)
    dripline_logger.setLevel(logging.DEBUG)
    yield written
    dripline_logger.setLevel(logging.INFO)
    std_logger.removeHandler(handler)


def test_a_full_scenario_logs_no_contact_data(aws, stream, frozen_clock, json_lines, caplog):
    caplog.set_level(logging.INFO)

    scenario.run(stream, frozen_clock)

    ours = json_lines.getvalue()
    others = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name != dripline_logger.name)
    assert '"step failed for good"' in ours and "on line 1" in ours  # the template error was logged...
    for secret in (scenario.EMAIL, scenario.EMAIL.split("@")[0], scenario.FIRST_NAME, scenario.LAST_NAME, "Call ", "Hi "):
        assert secret not in ours and secret not in others, f"{secret!r} is in the logs"  # ...without contact data
