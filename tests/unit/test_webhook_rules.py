"""The webhook action's pure rules: which addresses, which URLs, which answers are retried."""
import hashlib
import hmac
import ipaddress

import pytest

from dripline.actions import ActionError
from dripline.actions.webhook import Target, check_url, outcome, refusal, signature
from dripline.domain import Outcome
from dripline.errors import ValidationFailed


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "::", "fe80::1", "fc00::1", "ff02::1", "::ffff:10.0.0.1",
     "2002:a9fe:a9fe::1", "2001:0:4136:e378:8000:63bf:80ff:fffe", "64:ff9b::a9fe:a9fe", "192.0.2.1", "198.18.0.1"],
)
def test_internal_addresses_are_refused_however_written(address):
    # 6to4 / Teredo / NAT64 forms above embed 169.254.169.254, 127.0.0.1 and the like.
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address):
    assert refusal(ipaddress.ip_address(address)) is None


def test_the_local_relaxation_admits_http_and_127_0_0_1_only():
    assert check_url("http://127.0.0.1:8080/h", allow_insecure_local=True) == Target("http", "127.0.0.1", 8080, "/h")
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow_insecure_local=True) is None
    for url in ("http://10.0.0.1/h", "http://[::1]/h", "http://127.0.0.2/h", "ftp://127.0.0.1/h"):
        with pytest.raises(ValidationFailed):
            check_url(url, allow_insecure_local=True)
    with pytest.raises(ValidationFailed, match="https"):
        check_url("http://127.0.0.1:8080/h", allow_insecure_local=False)


def test_a_url_is_split_into_what_the_connection_needs():
    assert check_url("https://Hooks.Example.com./a/b?c=d#frag", allow_insecure_local=False) == Target(
        "https", "hooks.example.com", 443, "/a/b?c=d"
    )
    assert check_url("https://hooks.example.com", allow_insecure_local=False).path == "/"
    assert check_url("https://bücher.example/x", allow_insecure_local=False).host == "xn--bcher-kva.example"


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_under_each_secret():
    header = signature(["k1", "k2"], b"{}", 1700000000)

    expected = [hmac.new(k, b"1700000000.{}", hashlib.sha256).hexdigest() for k in (b"k1", b"k2")]
    assert header == f"t=1700000000,v1={expected[0]},v1={expected[1]}"


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_succeeds(status):
    result = outcome(status, "run:1")
    assert result.outcome is Outcome.SUCCEEDED and result.detail == {"status": status, "idempotency_key": "run:1"}


@pytest.mark.parametrize("status,retryable", [(500, True), (502, True), (503, True), (429, True),
                                              (400, False), (401, False), (404, False), (422, False), (301, False), (302, False)])
def test_5xx_and_429_are_retryable_other_answers_are_not(status, retryable):
    with pytest.raises(ActionError) as caught:
        outcome(status, "run:1")
    assert caught.value.retryable is retryable and str(caught.value).startswith(f"http_{status}")
