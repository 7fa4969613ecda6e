"""Hostile request bodies get a 400 or a 422 with a message, never a 500, and write nothing."""
import base64
import json

import pytest

from tests.api.conftest import contact_body, pipeline_body


def nested(depth: int) -> dict:
    node: dict = {}
    for _ in range(depth):
        node = {"a": node}
    return node


def pipeline_with(**step_fields) -> dict:
    body = pipeline_body()
    body["steps"][0].update(step_fields)
    return body


def assert_refused(reply, status: int, field: str) -> None:
    assert reply.status == status, reply.body
    assert reply.body["field"] == field and reply.body["message"].startswith(f"{field}: ")


@pytest.mark.parametrize("path", ["/contacts", "/pipelines", "/contacts/x", "/tasks/x", "/contacts/x/runs"])
def test_a_body_that_is_not_utf8_is_400(api, snapshot, path):
    before = snapshot()
    event = api.event("PATCH" if path in ("/contacts/x", "/tasks/x") else "POST", path)
    event["body"], event["isBase64Encoded"] = base64.b64encode(b'{"email": "\xff\xfe@example.com"}').decode(), True

    reply = api.send(event)

    assert_refused(reply, 400, "body")
    assert "UTF-8" in reply.message
    assert snapshot() == before


def test_a_body_that_is_not_base64_when_it_says_so_is_400(api):
    event = api.event("POST", "/contacts")
    event["body"], event["isBase64Encoded"] = "not base64!", True

    assert_refused(api.send(event), 400, "body")


def test_json_nested_beyond_the_parser_is_400(api, snapshot):
    before = snapshot()

    for raw in ("[" * 1500 + "]" * 1500, '{"a":' * 5000 + "1" + "}" * 5000):
        assert_refused(api.post("/contacts", raw_body=raw), 400, "body")
    assert snapshot() == before


def test_step_data_nested_500_deep_is_422_naming_the_step(api, snapshot):
    before = snapshot()

    reply = api.post("/pipelines", pipeline_with(data={"subject": "Hi", "deep": nested(500)}))

    assert reply.status == 422
    assert reply.body["field"].startswith("steps[0].data") and "nested more than" in reply.message
    assert snapshot() == before


def test_an_integer_of_5000_digits_is_refused(api, snapshot):
    before = snapshot()
    huge = "9" * 5000

    for path, raw in (
        ("/contacts", '{"email": "ada@example.com", "first_name": ' + huge + "}"),
        ("/contacts", '{"email": "ada@example.com", "attributes": {"n": ' + huge + "}}"),
        ("/pipelines", json.dumps(pipeline_body()).replace('"delay_seconds": 0', '"delay_seconds": ' + huge, 1)),
    ):
        reply = api.post(path, raw_body=raw)
        assert reply.status in (400, 422) and reply.body["field"], reply.body
    assert snapshot() == before


def test_an_integer_of_1000_digits_is_422_naming_the_field(api):
    reply = api.post("/contacts", raw_body=json.dumps(contact_body())[:-1] + ', "attributes": {"n": ' + "9" * 1000 + "}}")

    assert_refused(reply, 422, "attributes")


PARENTHESES = "{{ " + "(" * 300 + "1" + ")" * 300 + " }}"
PLUS_TERMS = "{{ " + " + ".join(["1"] * 2000) + " }}"


# (A subject has at most 998 characters: 2,000 terms only fit in the message.)
@pytest.mark.parametrize("template, where", [
    (PARENTHESES, "message"), (PLUS_TERMS, "message"), (PARENTHESES, "subject"),
])
def test_a_template_too_deep_to_check_is_422(api, snapshot, template, where):
    before = snapshot()
    if where == "message":
        body = pipeline_with(message=template)
    else:
        body = pipeline_with(data={"subject": template})

    reply = api.post("/pipelines", body)

    # The template check may name the field itself (data.subject); the API's guard names the step's data.
    field = "steps[0].message" if where == "message" else "steps[0].data"
    assert reply.status == 422 and reply.body["field"].startswith(field), reply.body
    assert reply.body["message"].startswith(f"{reply.body['field']}: ")
    assert snapshot() == before


def test_an_id_longer_than_any_key_is_404(api):
    for method, path in (("GET", "/contacts/"), ("GET", "/pipelines/"), ("GET", "/runs/"), ("PATCH", "/tasks/")):
        reply = api.call(method, path + "x" * 3000, {"status": "done"} if method == "PATCH" else None)
        assert (reply.status, reply.body) == (404, {"message": "Not found"})
