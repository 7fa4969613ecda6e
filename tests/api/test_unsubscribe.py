"""The signed unsubscribe link: the link is the credential; forged links change nothing."""
import email
import email.policy
from urllib.parse import urlparse

from moto.ses.models import ses_backends

from dripline import unsubscribe
from dripline.processor import Processor
from dripline.storage import contacts, runs
from tests.api.conftest import TEAM, contact_body, deliver, pipeline_body


def new_contact(api, stream, **overrides):
    pipeline = api.post("/pipelines", pipeline_body(automatic=True)).body
    contact = api.post("/contacts", contact_body(pipeline_ids=[], **overrides)).body
    deliver(stream)
    return pipeline, contact


def link_path(settings, contact_id):
    return f"/unsubscribe/{unsubscribe.sign(settings.unsubscribe_secret, TEAM, contact_id)}"


def test_one_click_post_unsubscribes_and_cancels_runs(api, stream, settings):
    _, contact = new_contact(api, stream)

    reply = api.post(link_path(settings, contact["contact_id"]), team=None, raw_body="List-Unsubscribe=One-Click")
    deliver(stream)

    assert (reply.status, reply.body) == (200, {"status": "unsubscribed"})
    assert api.get(f"/contacts/{contact['contact_id']}").body["unsubscribed"] is True
    assert {r.status for r in runs.runs_of(TEAM, "contact", contact["contact_id"])} == {"cancelled"}


def test_get_shows_a_confirm_page_and_changes_nothing(api, stream, settings):
    _, contact = new_contact(api, stream)
    path = link_path(settings, contact["contact_id"])

    reply = api.get(path, team=None)

    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
    assert f'action="{path}"' in reply.body and 'method="post"' in reply.body
    assert contacts.get_contact(TEAM, contact["contact_id"]).unsubscribed is False


def test_forged_or_altered_link_is_404_and_changes_nothing(api, stream, settings, snapshot):
    _, contact = new_contact(api, stream)
    genuine = unsubscribe.sign(settings.unsubscribe_secret, TEAM, contact["contact_id"])
    other = unsubscribe.sign(settings.unsubscribe_secret, TEAM, "someone-else")
    before = snapshot()

    for token in (
        unsubscribe.sign("not-the-secret", TEAM, contact["contact_id"]),  # forged
        other.split(".")[0] + "." + genuine.split(".")[1],  # payload swapped
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),  # signature altered
        "garbage",
    ):
        assert api.post(f"/unsubscribe/{token}", team=None).status == 404
        assert api.get(f"/unsubscribe/{token}", team=None).status == 404

    assert snapshot() == before


def test_repeated_unsubscribe_is_idempotent(api, stream, settings):
    _, contact = new_contact(api, stream)
    path = link_path(settings, contact["contact_id"])

    assert api.post(path, team=None).status == 200
    stamp = contacts.get_contact(TEAM, contact["contact_id"]).updated_at
    assert api.post(path, team=None).status == 200
    assert contacts.get_contact(TEAM, contact["contact_id"]).updated_at == stamp  # no second write


def test_the_link_in_a_sent_email_unsubscribes_its_contact(api, stream, settings):
    _, contact = new_contact(api, stream)
    Processor(settings).tick()  # the welcome email goes out
    (raw,) = ses_backends["123456789012"]["us-east-1"].sent_messages
    header = email.message_from_string(raw.raw_data, policy=email.policy.default)["List-Unsubscribe"]
    path = urlparse(header.strip("<>")).path

    assert api.post(path, team=None).status == 200
    assert contacts.get_contact(TEAM, contact["contact_id"]).unsubscribed is True
