"""The unsubscribe link: the link is the credential; it is opaque, bound to the contact's
subscription generation, and expires; forged, stale or expired links change nothing."""
import email
import email.policy
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from moto.ses.models import ses_backends

from dripline import clock, signing, unsubscribe
from dripline.processor import Processor
from dripline.storage import contacts, runs
from tests.api.conftest import TEAM, contact_body, deliver, pipeline_body

HTML = {"accept": "text/html,application/xhtml+xml"}


def new_contact(api, stream, **overrides):
    pipeline = api.post("/pipelines", pipeline_body(automatic=True)).body
    contact = api.post("/contacts", contact_body(pipeline_ids=[], **overrides)).body
    deliver(stream)
    return pipeline, contact


def link_path(settings, contact_id, generation=0, when=None):
    token = unsubscribe.sign(settings.unsubscribe_secret, TEAM, contact_id, generation, when or clock.now())
    return f"/unsubscribe/{token}"


def browser(api, method, path):
    """A request as a browser sends it: accepting HTML (a form POST has an empty body)."""
    event = api.event(method, path, team=None)
    event["headers"].update(HTML)
    return api.send(event)


def test_one_click_post_unsubscribes_and_cancels_runs(api, stream, settings):
    _, contact = new_contact(api, stream)

    reply = api.post(link_path(settings, contact["contact_id"]), team=None, raw_body="List-Unsubscribe=One-Click")
    deliver(stream)

    assert (reply.status, reply.body) == (200, {"status": "unsubscribed"})
    assert api.get(f"/contacts/{contact['contact_id']}").body["unsubscribed"] is True
    assert {r.status for r in runs.runs_of(TEAM, "contact", contact["contact_id"])} == {"cancelled"}


def test_get_shows_a_confirm_page_naming_the_masked_address_and_sender(api, stream, settings):
    _, contact = new_contact(api, stream, email="ada@example.com")
    path = link_path(settings, contact["contact_id"])

    reply = browser(api, "GET", path)

    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
    assert f'action="{path}"' in reply.body and 'method="post"' in reply.body
    assert "a\u2022\u2022\u2022@example.com" in reply.body and "ada@" not in reply.body
    assert "Dripline (no-reply@example.com)" in reply.body and settings.email_from == "Dripline <no-reply@example.com>"
    assert '<html lang="en">' in reply.body and "<main>" in reply.body
    assert contacts.get_contact(TEAM, contact["contact_id"]).unsubscribed is False


def test_after_unsubscribing_get_says_so_instead_of_asking_again(api, stream, settings):
    _, contact = new_contact(api, stream, email="ada@example.com")
    path = link_path(settings, contact["contact_id"])

    posted = browser(api, "POST", path)
    again = browser(api, "GET", path)

    for reply in (posted, again):
        assert reply.status == 200 and "unsubscribed" in reply.body and "<form" not in reply.body
        assert "a\u2022\u2022\u2022@example.com" in reply.body


def test_forged_or_altered_link_is_404_and_changes_nothing(api, stream, settings, snapshot):
    _, contact = new_contact(api, stream)
    genuine = link_path(settings, contact["contact_id"]).rsplit("/", 1)[1]
    before = snapshot()

    for token in (
        unsubscribe.sign("not-the-secret", TEAM, contact["contact_id"], 0, clock.now()),  # forged
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),  # ciphertext altered
        ("B" if genuine[0] == "A" else "A") + genuine[1:],  # tag altered
        genuine[:20],  # truncated
        "garbage",
        "a.b",
    ):
        for method in ("GET", "POST"):
            reply = api.call(method, f"/unsubscribe/{token}", team=None)
            assert (reply.status, reply.body) == (404, {"message": "unsubscribe link not found"}), token
    assert snapshot() == before


def test_a_bad_link_shows_a_page_to_a_browser(api):
    reply = browser(api, "GET", "/unsubscribe/garbage")

    assert reply.status == 404 and reply.headers["Content-Type"].startswith("text/html")
    assert "<h1>This link does not work</h1>" in reply.body


def test_the_token_reveals_neither_team_nor_contact(api, stream, settings):
    _, contact = new_contact(api, stream)
    token = link_path(settings, contact["contact_id"]).rsplit("/", 1)[1]

    opened = signing._unb64(token)

    assert TEAM.encode() not in opened and contact["contact_id"].encode() not in opened
    assert TEAM not in token and contact["contact_id"] not in token


def test_re_subscribing_makes_earlier_links_stop_working(api, stream, settings, snapshot):
    _, contact = new_contact(api, stream)
    contact_id = contact["contact_id"]
    old = link_path(settings, contact_id)
    assert api.post(old, team=None).status == 200

    assert api.patch(f"/contacts/{contact_id}", {"unsubscribed": False}).status == 200
    before = snapshot()

    assert api.post(old, team=None).status == 404
    assert api.get(old, team=None).status == 404
    assert snapshot() == before  # still subscribed
    new = link_path(settings, contact_id, generation=1)
    assert api.post(new, team=None).status == 200
    assert contacts.get_contact(TEAM, contact_id).unsubscribed is True


def test_other_changes_keep_the_generation(api, stream, settings):
    _, contact = new_contact(api, stream)
    path = link_path(settings, contact["contact_id"])

    api.patch(f"/contacts/{contact['contact_id']}", {"first_name": "Augusta", "unsubscribed": False})

    assert api.post(path, team=None).status == 200


@pytest.mark.parametrize("age_days, status", [(unsubscribe.LIFETIME_DAYS, 200), (unsubscribe.LIFETIME_DAYS + 1, 404)])
def test_a_link_expires_after_its_lifetime(api, stream, settings, age_days, status):
    _, contact = new_contact(api, stream)
    path = link_path(settings, contact["contact_id"], when=clock.now() - timedelta(days=age_days))

    assert api.post(path, team=None).status == status


def test_repeated_unsubscribe_is_idempotent(api, stream, settings):
    _, contact = new_contact(api, stream)
    path = link_path(settings, contact["contact_id"])

    assert api.post(path, team=None).status == 200
    stamp = contacts.get_contact(TEAM, contact["contact_id"]).updated_at
    assert api.post(path, team=None).status == 200
    assert contacts.get_contact(TEAM, contact["contact_id"]).updated_at == stamp  # no second write


def test_a_deleted_contacts_link_answers_unsubscribed(api, stream, settings):
    _, contact = new_contact(api, stream)
    path = link_path(settings, contact["contact_id"])
    api.delete(f"/contacts/{contact['contact_id']}")

    assert api.post(path, team=None).body == {"status": "unsubscribed"}
    assert "unsubscribed" in browser(api, "GET", path).body


def test_the_link_in_a_sent_email_unsubscribes_its_contact(api, stream, settings):
    _, contact = new_contact(api, stream)
    Processor(settings).tick()  # the welcome email goes out
    (raw,) = ses_backends["123456789012"]["us-east-1"].sent_messages
    header = email.message_from_string(raw.raw_data, policy=email.policy.default)["List-Unsubscribe"]
    path = urlparse(header.strip("<>")).path

    assert api.post(path, team=None).status == 200
    assert contacts.get_contact(TEAM, contact["contact_id"]).unsubscribed is True


def test_emails_sent_after_re_subscribing_carry_a_working_link(api, stream, settings):
    _, contact = new_contact(api, stream)
    contact_id = contact["contact_id"]
    api.patch(f"/contacts/{contact_id}", {"unsubscribed": True})
    api.patch(f"/contacts/{contact_id}", {"unsubscribed": False})
    api.post(f"/contacts/{contact_id}/runs", {"pipeline_id": api.get("/pipelines").body["items"][0]["pipeline_id"]})
    deliver(stream)

    Processor(settings).tick()

    (raw,) = ses_backends["123456789012"]["us-east-1"].sent_messages
    header = email.message_from_string(raw.raw_data, policy=email.policy.default)["List-Unsubscribe"]
    assert api.post(urlparse(header.strip("<>")).path, team=None).status == 200
