"""Opaque next_token pagination: complete, stable, and unforgeable across teams."""
import base64
import json

import pytest

from dripline.api import pagination
from dripline.api.errors import BadRequest
from tests.api.conftest import OTHER, TEAM, deliver, pipeline_body
from tests.support import put_contact


def pages(api, path, team=TEAM, **query):
    seen, token, count = [], None, 0
    while True:
        params = dict(query, **({"next_token": token} if token else {}))
        reply = api.get(path, query=params, team=team)
        assert reply.status == 200, reply.body
        seen.append(reply.body["items"])
        token = reply.body["next_token"]
        count += 1
        if token is None or count > 50:
            return seen


def test_250_contacts_page_through_completely(api):
    created = {api.post("/contacts", {"email": f"c{n:03d}@example.com"}).body["contact_id"] for n in range(250)}
    put_contact(OTHER, "theirs@example.com")

    by_100 = pages(api, "/contacts", limit=100)
    by_default = pages(api, "/contacts")

    assert [len(p) for p in by_100] == [100, 100, 50]
    ids = [c["contact_id"] for page in by_100 for c in page]
    assert len(ids) == len(set(ids)) == 250 and set(ids) == created
    default_ids = [c["contact_id"] for page in by_default for c in page]
    assert all(len(p) <= 50 for p in by_default) and sorted(default_ids) == sorted(ids)


def test_filtered_runs_fill_their_pages(api, stream):
    pipeline = api.post("/pipelines", pipeline_body()).body
    contacts = [put_contact(TEAM, f"r{n}@example.com").contact_id for n in range(12)]
    deliver(stream)
    for contact_id in contacts[::2]:
        (run,) = api.get(f"/contacts/{contact_id}/runs").body["items"]
        api.delete(f"/contacts/{contact_id}/runs/{run['run_id']}")

    cancelled = pages(api, "/runs", status="cancelled", limit=4)
    of_pipeline = pages(api, "/runs", pipeline_id=pipeline["pipeline_id"], status="pending", limit=5)

    assert [len(p) for p in cancelled][:1] == [4] and sum(len(p) for p in cancelled) == 6
    assert {r["status"] for p in cancelled for r in p} == {"cancelled"}
    assert sum(len(p) for p in of_pipeline) == 6
    assert len({r["run_id"] for p in of_pipeline for r in p}) == 6


@pytest.fixture
def token(api):
    for n in range(3):
        put_contact(TEAM, f"t{n}@example.com")
    reply = api.get("/contacts", query={"limit": 1})
    assert reply.body["next_token"]
    return reply.body["next_token"]


def test_a_tampered_token_is_400(api, token):
    payload, mac = token.split(".")
    key = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    key["k"]["team_id"]["S"] = OTHER
    forged = base64.urlsafe_b64encode(json.dumps(key).encode()).rstrip(b"=").decode() + "." + mac

    for bad in (forged, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "garbage", "a.b.c", token.split(".")[0]):
        reply = api.get("/contacts", query={"next_token": bad})
        assert (reply.status, reply.body["field"]) == (400, "next_token"), bad


def test_a_token_is_good_only_for_its_team_and_listing(api, token):
    assert api.get("/contacts", query={"next_token": token}).status == 200
    assert api.get("/contacts", query={"next_token": token}, team=OTHER).status == 400
    assert api.get("/pipelines", query={"next_token": token}).status == 400
    assert api.get("/runs", query={"next_token": token}).status == 400


def test_a_genuinely_signed_key_of_another_team_is_refused():
    # Defence in depth: even a token signed with the right secret must name the caller's team.
    secret = "s3cret"
    for key in ({"team_id": {"S": "globex"}, "contact_id": {"S": "x"}},
                {"owner": {"S": "globex#contact#x"}, "run_id": {"S": "r"}, "team_id": {"S": "acme"}},
                {"contact_id": {"S": "x"}}):
        signed = pagination.encode(secret, "acme", "contacts", key)
        with pytest.raises(BadRequest):
            pagination.decode(secret, "acme", "contacts", signed)
    good = {"team_id": {"S": "acme"}, "contact_id": {"S": "x"}}
    assert pagination.decode(secret, "acme", "contacts", pagination.encode(secret, "acme", "contacts", good)) == good
