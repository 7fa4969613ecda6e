"""Webhook steps over the API: URLs vetted on save (SSRF), and the team's signing secret."""
import threading
from datetime import timedelta

import pytest

from dripline.storage import teams
from tests.api.conftest import OTHER, TEAM, pipeline_body


def webhook_pipeline(url) -> dict:
    return pipeline_body(steps=[{"step_number": 1, "action_type": "webhook", "delay_seconds": 0,
                                 "message": "{{ contact.email }} joined", "data": {"url": url}}])


REFUSED = [
    ("http (not https)", "http://hooks.example.com/x", "https"),
    ("loopback", "https://127.0.0.1/x", "loopback"),
    ("loopback elsewhere in 127/8", "https://127.8.9.10/x", "loopback"),
    ("ipv6 loopback", "https://[::1]/x", "loopback"),
    ("ipv4-mapped loopback", "https://[::ffff:127.0.0.1]/x", "loopback"),
    ("private 10/8", "https://10.1.2.3/x", "private"),
    ("private 172.16/12", "https://172.16.0.1/x", "private"),
    ("private 192.168/16", "https://192.168.0.10/x", "private"),
    ("unique local fc00::/7", "https://[fd12:3456::1]/x", "private"),
    ("cloud metadata", "https://169.254.169.254/latest/meta-data/", "link-local"),
    ("ipv6 link-local", "https://[fe80::1]/x", "link-local"),
    ("multicast", "https://224.0.0.251/x", "multicast"),
    ("unspecified", "https://0.0.0.0/x", "unspecified"),
    ("reserved", "https://240.0.0.1/x", "reserved"),
    ("carrier-grade NAT", "https://100.64.0.1/x", "non-public"),
    ("6to4 of loopback", "https://[2002:7f00:1::]/x", "loopback"),
    ("decimal integer host", "https://2130706433/x", "dotted-decimal"),
    ("hex integer host", "https://0x7f000001/x", "dotted-decimal"),
    ("octal dotted host", "https://0177.0.0.1/x", "dotted-decimal"),
    ("short dotted host", "https://127.1/x", "dotted-decimal"),
    ("localhost", "https://localhost/x", "fully qualified"),
    ("sub.localhost", "https://api.localhost/x", "loopback"),
    ("single label", "https://metadata/x", "fully qualified"),
    ("user info", "https://user:pass@hooks.example.com/x", "user name"),
    ("no host", "https:///x", "host"),
    ("bad port", "https://hooks.example.com:99999/x", "valid URL"),
    ("port 0", "https://hooks.example.com:0/x", "port 0"),
    ("non-ASCII path", "https://hooks.example.com/caf\u00e9", "percent-encode"),
    ("spaces", "https://hooks.example.com/a b", "without spaces"),
    ("not a string", 42, "URL"),
    ("missing", None, "URL"),
]


@pytest.mark.parametrize("url,reason", [(u, r) for _, u, r in REFUSED], ids=[name for name, _, _ in REFUSED])
def test_a_webhook_url_that_could_reach_inside_is_refused_on_save(api, snapshot, url, reason):
    before = snapshot()
    body = webhook_pipeline(url)
    if url is None:
        body["steps"][0]["data"] = {}

    reply = api.post("/pipelines", body)

    assert reply.status == 422 and reply.body["field"] == "steps[0].data.url"
    assert reason in reply.message
    assert snapshot() == before


@pytest.mark.parametrize("url", ["https://hooks.example.com/dripline?x=1", "https://93.184.216.34:8443/h", "https://[2606:4700::1111]/h"])
def test_a_public_https_webhook_url_is_accepted(api, url):
    reply = api.post("/pipelines", webhook_pipeline(url))

    assert reply.status == 201 and reply.body["steps"][0]["data"] == {"url": url}


def test_a_webhook_message_must_be_a_valid_template(api):
    body = webhook_pipeline("https://hooks.example.com/x")
    body["steps"][0]["message"] = "{{ contact.email "

    reply = api.post("/pipelines", body)

    assert reply.status == 422 and reply.body["field"] == "steps[0].message"


def test_the_secret_is_created_on_first_read_and_then_stable(api, frozen_clock):
    first = api.get("/webhook-secret")
    frozen_clock.advance(3600)
    again = api.get("/webhook-secret")

    assert first.status == 200 and first.body == again.body
    assert first.body["secret"].startswith("whsec_") and len(first.body["secret"]) == len("whsec_") + 64
    assert first.body["previous_valid_until"] is None
    assert api.get("/webhook-secret", team=OTHER).body["secret"] != first.body["secret"]  # one per team


def test_rotation_replaces_the_secret_and_honours_the_old_one_for_a_day(api, frozen_clock):
    old = api.get("/webhook-secret").body["secret"]

    rotated = api.post("/webhook-secret/rotate")

    assert rotated.status == 200 and rotated.body["secret"] not in (old, None)
    assert api.get("/webhook-secret").body == rotated.body
    keys = teams.webhook_secret(TEAM, frozen_clock.now())
    assert keys.valid_secrets(frozen_clock.now()) == [rotated.body["secret"], old]
    assert keys.valid_secrets(frozen_clock.now() + timedelta(hours=24)) == [rotated.body["secret"]]
    assert rotated.body["previous_valid_until"] == (frozen_clock.now() + timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_rotating_before_any_read_creates_then_rotates(api):
    reply = api.post("/webhook-secret/rotate")

    assert reply.status == 200 and reply.body["previous_valid_until"] is not None


@pytest.mark.parametrize("method,path", [("GET", "/webhook-secret"), ("POST", "/webhook-secret/rotate")])
def test_the_secret_routes_need_a_token(api, snapshot, method, path):
    before = snapshot()

    reply = api.call(method, path, team=None)

    assert reply.status == 401 and snapshot() == before


def test_concurrent_first_users_agree_on_one_secret(aws, frozen_clock):
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(teams.webhook_secret(TEAM, frozen_clock.now()).secret)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(seen) == 8 and len(set(seen)) == 1
