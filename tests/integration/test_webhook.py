"""The webhook action through the processor, against a real HTTP receiver on 127.0.0.1."""
import inspect
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from dripline.actions.webhook import signature
from dripline.processor import Processor
from dripline.settings import Settings
from dripline.storage import runs, teams
from dripline_local.webhook_receiver import Receiver, verify_dripline_signature
from functions.enrollment import app as enrollment_app
from tests.support import FakeContext, StreamReader, make_pipeline, put_contact, run_ticks_until, stream_event

TEAM = "acme"


@pytest.fixture
def settings() -> Settings:
    # The local-only relaxation (http, 127.0.0.1) and a short timeout for the slow receiver.
    return Settings(
        retry_base_seconds=60, retry_max_seconds=3600, processor_workers=8, due_shards=4,
        webhook_allow_insecure_local=True, webhook_timeout_seconds=0.5,
    )


@pytest.fixture
def stream(aws):
    return StreamReader(aws.contacts_stream_arn)


@pytest.fixture
def receiver(aws, frozen_clock):
    with Receiver() as endpoint:
        endpoint.secrets = teams.webhook_secret(TEAM, frozen_clock.now()).valid_secrets(frozen_clock.now())
        yield endpoint


def webhook_step(url: str, message: str = "Hello {{ contact.first_name }}", step_number: int = 1) -> dict:
    return {"step_number": step_number, "action_type": "webhook", "delay_seconds": 0, "message": message, "data": {"url": url}}


def enrolled(stream, url: str, **step) -> str:
    """A contact enrolled in a one-webhook pipeline; returns the contact id."""
    make_pipeline(TEAM, [webhook_step(url, **step)])
    contact = put_contact(TEAM, "ada@example.com", first_name="Ada")
    assert enrollment_app.lambda_handler(stream_event(stream.read()), FakeContext()) == {"batchItemFailures": []}
    return contact.contact_id


def the_run(contact_id: str):
    (run,) = runs.runs_of(TEAM, "contact", contact_id)
    return run


def test_a_tick_posts_a_signed_webhook_that_the_receiver_verifies(aws, stream, settings, receiver):
    contact_id = enrolled(stream, receiver.url("/hook?source=dripline"))

    Processor(settings).tick()

    (delivery,) = receiver.deliveries
    run = the_run(contact_id)
    assert delivery.verified and delivery.path == "/hook?source=dripline"
    assert delivery.headers["Idempotency-Key"] == f"{run.run_id}:1"
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["Host"] == f"127.0.0.1:{receiver.port}"
    body = delivery.json
    assert body == {
        "id": f"{run.run_id}:1", "type": "pipeline.step", "team_id": TEAM, "pipeline_id": run.pipeline_id,
        "pipeline_version": 1, "run_id": run.run_id, "step_number": 1, "attempt": 1,
        "pipelineable_type": "contact", "pipelineable_id": contact_id,
        "scheduled_at": body["scheduled_at"], "message": "Hello Ada",
    }
    assert run.status == "completed"
    assert (run.history[0].outcome, run.history[0].detail) == ("succeeded", {"status": 200, "idempotency_key": f"{run.run_id}:1"})


def test_the_readme_shows_the_receivers_verification_code():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert inspect.getsource(verify_dripline_signature) in readme


def test_the_signature_binds_body_time_and_secret():
    verify = verify_dripline_signature

    body, now = b'{"a":1}', int(time.time())
    header = signature(["whsec_right"], body, now)
    assert verify("whsec_right", header, body)
    assert not verify("whsec_wrong", header, body)
    assert not verify("whsec_right", header, body + b" ")
    assert not verify("whsec_right", signature(["whsec_right"], body, now - 301), body)  # outside the replay window
    assert not verify("whsec_right", header.replace(f"t={now}", f"t={now + 1}"), body)


@pytest.mark.parametrize("failure", [500, 503, 429])
def test_5xx_and_429_are_retried_with_backoff_and_the_same_key(aws, stream, settings, frozen_clock, receiver, failure):
    contact_id = enrolled(stream, receiver.url())
    receiver.answers.extend([(failure, 0), (failure, 0)])
    processor = Processor(settings)

    processor.tick()
    run = the_run(contact_id)
    assert (run.status, run.last_error, run.attempts) == ("pending", f"http_{failure}", 1)
    assert run.next_step_at == frozen_clock.now() + timedelta(seconds=60)  # the engine's backoff
    run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(hours=1))

    run = the_run(contact_id)
    assert run.status == "completed" and run.history[0].attempt == 3
    assert len({d.headers["Idempotency-Key"] for d in receiver.deliveries}) == 1
    assert [d.json["attempt"] for d in receiver.deliveries] == [1, 2, 3]
    assert all(d.verified for d in receiver.deliveries)


def test_a_receiver_slower_than_the_timeout_is_retried(aws, stream, settings, frozen_clock, receiver):
    contact_id = enrolled(stream, receiver.url())
    receiver.answers.append((200, settings.webhook_timeout_seconds + 0.5))
    processor = Processor(settings)

    processor.tick()
    run = the_run(contact_id)
    assert run.status == "pending" and run.last_error.startswith("timeout")
    frozen_clock.advance(60)
    processor.tick()

    assert the_run(contact_id).status == "completed"
    # The slow request did arrive: the same event twice, which receivers dedupe by key.
    first, second = receiver.deliveries
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


def test_a_closed_port_is_retried(aws, stream, settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    contact_id = enrolled(stream, f"http://127.0.0.1:{port}/hook")

    Processor(settings).tick()

    run = the_run(contact_id)
    assert run.status == "pending" and run.last_error.startswith("connection_failed: ConnectionRefusedError")


@pytest.mark.parametrize("status", [400, 404, 410, 301])
def test_other_4xx_and_redirects_fail_the_step_for_good(aws, stream, settings, receiver, status):
    contact_id = enrolled(stream, receiver.url())
    receiver.answers.append((status, 0))

    Processor(settings).tick()

    run = the_run(contact_id)
    assert run.status == "failed" and run.last_error.startswith(f"http_{status}")
    assert len(receiver.deliveries) == 1  # not retried, the redirect not followed


def test_a_wrong_signature_is_refused_by_the_receiver_and_fails_the_step(aws, stream, settings, receiver):
    receiver.secrets = ["whsec_not_the_teams"]
    contact_id = enrolled(stream, receiver.url())

    Processor(settings).tick()

    assert the_run(contact_id).last_error == "http_401"


def test_after_a_rotation_webhooks_are_signed_with_both_secrets_until_the_grace_ends(
    aws, stream, settings, frozen_clock, receiver
):
    old = receiver.secrets[0]
    new = teams.rotate_webhook_secret(TEAM, frozen_clock.now()).secret
    make_pipeline(TEAM, [webhook_step(receiver.url()), {**webhook_step(receiver.url(), step_number=2), "delay_seconds": 86400 + 60}])
    put_contact(TEAM, "ada@example.com")
    assert enrollment_app.lambda_handler(stream_event(stream.read()), FakeContext()) == {"batchItemFailures": []}
    verify = verify_dripline_signature

    run_ticks_until(Processor(settings), frozen_clock, frozen_clock.now() + timedelta(days=2))

    during, after = receiver.deliveries
    assert during.headers["Dripline-Signature"].count("v1=") == 2
    assert verify(old, during.headers["Dripline-Signature"], during.body)
    assert verify(new, during.headers["Dripline-Signature"], during.body)
    assert after.headers["Dripline-Signature"].count("v1=") == 1
    assert verify(new, after.headers["Dripline-Signature"], after.body)
    assert not verify(old, after.headers["Dripline-Signature"], after.body)


def fake_dns(monkeypatch, answers: dict[str, list[list[str]]]) -> list[str]:
    """socket.getaddrinfo answering `host` with successive address lists; returns the names asked."""
    real, asked = socket.getaddrinfo, []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        sequence = answers[host]
        addresses = sequence.pop(0) if len(sequence) > 1 else sequence[0]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port) if ":" not in a else (a, port, 0, 0))
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "addresses",
    [["10.0.0.7"], ["169.254.169.254"], ["93.184.216.34", "192.168.1.1"], ["::1"], ["::ffff:127.0.0.1"], ["fd00::1"], ["0.0.0.0"]],
    ids=["private", "metadata", "any-of-several", "ipv6-loopback", "ipv4-mapped", "unique-local", "unspecified"],
)
def test_a_name_resolving_to_an_internal_address_is_refused_at_send_time(aws, stream, settings, monkeypatch, addresses):
    asked = fake_dns(monkeypatch, {"hooks.example.com": [addresses]})
    contact_id = enrolled(stream, "https://hooks.example.com/dripline")

    Processor(replace(settings, webhook_allow_insecure_local=False)).tick()

    run = the_run(contact_id)
    assert run.status == "failed" and run.last_error.startswith("refused_address: hooks.example.com resolves to an internal")
    assert asked == ["hooks.example.com"]


def test_the_connection_goes_to_the_vetted_address_even_if_dns_changes(aws, stream, settings, monkeypatch, receiver):
    # DNS rebinding: the first answer passes the check, later answers point inside.
    asked = fake_dns(monkeypatch, {"hooks.example.com": [["127.0.0.1"], ["10.0.0.1"]]})
    contact_id = enrolled(stream, receiver.url(host="hooks.example.com"))

    Processor(settings).tick()

    (delivery,) = receiver.deliveries
    assert delivery.verified and delivery.headers["Host"] == f"hooks.example.com:{receiver.port}"
    assert asked == ["hooks.example.com"]  # resolved once, by the check; the connection used its answer
    assert the_run(contact_id).status == "completed"


def test_dns_failure_is_retried(aws, stream, settings, monkeypatch):
    def unresolvable(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    contact_id = enrolled(stream, "https://hooks.example.com/dripline")
    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)

    Processor(settings).tick()

    run = the_run(contact_id)
    assert run.status == "pending" and run.last_error.startswith("dns_failed")


def test_a_url_stored_under_other_rules_is_refused_at_send_time(aws, stream, settings, receiver):
    # Saved while the local relaxation was on; the processor now runs without it.
    contact_id = enrolled(stream, receiver.url())

    Processor(replace(settings, webhook_allow_insecure_local=False)).tick()

    run = the_run(contact_id)
    assert run.status == "failed" and run.last_error == "refused_url: must be an https:// URL"
    assert receiver.deliveries == []


@pytest.fixture
def tls_receiver(aws, frozen_clock, tmp_path, monkeypatch):
    """An HTTPS receiver on 127.0.0.1 with a certificate for hooks.example.com, trusted by the client."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=hooks.example.com",
         "-addext", "subjectAltName=DNS:hooks.example.com"],
        check=True, capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client's default context trusts it
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    with Receiver(tls=context) as endpoint:
        endpoint.secrets = teams.webhook_secret(TEAM, frozen_clock.now()).valid_secrets(frozen_clock.now())
        endpoint.sni = names
        yield endpoint


def test_https_goes_to_the_vetted_address_with_the_hosts_name_in_sni_and_certificate(
    aws, stream, settings, monkeypatch, tls_receiver
):
    asked = fake_dns(monkeypatch, {"hooks.example.com": [["127.0.0.1"], ["10.0.0.1"]]})
    contact_id = enrolled(stream, tls_receiver.url(host="hooks.example.com"))

    Processor(settings).tick()

    (delivery,) = tls_receiver.deliveries
    assert delivery.verified and tls_receiver.sni == ["hooks.example.com"]
    assert delivery.headers["Host"] == f"hooks.example.com:{tls_receiver.port}"
    assert asked == ["hooks.example.com"] and the_run(contact_id).status == "completed"


def test_https_refuses_a_certificate_for_another_name(aws, stream, settings, monkeypatch, tls_receiver):
    fake_dns(monkeypatch, {"other.example.com": [["127.0.0.1"]]})
    contact_id = enrolled(stream, tls_receiver.url(host="other.example.com"))

    Processor(settings).tick()

    run = the_run(contact_id)
    assert run.status == "pending" and "SSLCertVerificationError" in run.last_error
    assert tls_receiver.deliveries == []
