"""A run id names its owner within the team (so a run is read without an index), and the
SES tags of an email give back its team exactly, whatever characters the team id holds."""
import pytest

from dripline.email_tags import email_tags, tag_value, team_of
from dripline.storage.models import run_owner
from dripline.storage.runs import _run_id, owner_of


def test_a_run_id_names_its_owner_in_the_team_and_is_stable_per_generation():
    owner = run_owner("acme", "contact", "0f" * 16)
    first, again, second = _run_id(owner, "p1", 0), _run_id(owner, "p1", 0), _run_id(owner, "p1", 1)
    assert first == again != second
    assert owner_of("acme", first) == owner
    # another team's caller derives another owner: its read finds nothing
    assert owner_of("globex", first) == run_owner("globex", "contact", "0f" * 16)
    # and the id is what SES tags and URL paths carry unchanged
    assert tag_value(first) == first


@pytest.mark.parametrize("run_id", ["", "no-such-run", "0" * 16, "0" * 16 + "x" + "abc", "g" * 16 + "cabc", "0" * 16 + "ca#b"])
def test_what_is_not_a_run_id_names_no_owner(run_id):
    assert owner_of("acme", run_id) is None


@pytest.mark.parametrize("team", ["acme", "team-42_b", "Acme Corp", "é" * 200, "a.b/c:d"])
def test_the_tags_give_back_the_team_exactly(team):
    tags = email_tags(team, "p1", "r1", 3)
    assert all(len(t["Value"]) <= 256 and tag_value(t["Value"]) == t["Value"] for t in tags)
    as_in_an_event = {t["Name"]: [t["Value"]] for t in tags}
    assert team_of(as_in_an_event) == team
    assert as_in_an_event["run"] == ["r1"] and as_in_an_event["step"] == ["3"]


def test_an_event_without_a_team_names_none():
    assert team_of({"run": ["r1"]}) is None
