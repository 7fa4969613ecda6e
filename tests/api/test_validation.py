"""Every rule of API.md: a 4xx whose message names the field, and nothing written."""
import base64
import json

import pytest

from tests.api.conftest import contact_body, pipeline_body

EMAIL = {"step_number": 1, "action_type": "send_email", "delay_seconds": 0, "message": "Hi", "data": {"subject": "Hello"}}


def step(**changes):
    return {**EMAIL, **changes}


PIPELINE_CASES = [
    ("name missing", {"name": None}, "name"),
    ("name empty", {"name": ""}, "name"),
    ("name blank", {"name": "   "}, "name"),
    ("name too long", {"name": "x" * 201}, "name"),
    ("model_type unknown", {"model_type": "company"}, "model_type"),
    ("no steps", {"steps": []}, "steps"),
    ("51 steps", {"steps": [step(step_number=n) for n in range(1, 52)]}, "steps"),
    ("step_number 0", {"steps": [step(step_number=0)]}, "steps[0].step_number"),
    ("step_number a string", {"steps": [step(step_number="1")]}, "steps[0].step_number"),
    ("step_number a bool", {"steps": [step(step_number=True)]}, "steps[0].step_number"),
    ("step_number duplicate", {"steps": [step(), step()]}, "steps[1].step_number"),
    ("action_type unknown", {"steps": [step(action_type="fax")]}, "steps[0].action_type"),
    ("delay negative", {"steps": [step(delay_seconds=-1)]}, "steps[0].delay_seconds"),
    ("delay over a year", {"steps": [step(delay_seconds=31_536_001)]}, "steps[0].delay_seconds"),
    ("delay fractional", {"steps": [step(delay_seconds=1.5)]}, "steps[0].delay_seconds"),
    ("message over 100 KB", {"steps": [step(message="x" * (100 * 1024 + 1))]}, "steps[0].message"),
    ("data over 10 KB", {"steps": [step(data={"subject": "s", "blob": "x" * 10 * 1024})]}, "steps[0].data"),
    ("data not an object", {"steps": [step(data=["subject"])]}, "steps[0].data"),
    ("send_email without subject", {"steps": [step(data={})]}, "steps[0].data.subject"),
    ("send_email blank subject", {"steps": [step(data={"subject": " "})]}, "steps[0].data.subject"),
    ("message not a template", {"steps": [step(message="Hi {{ contact.first_name ")]}, "steps[0].message"),
    ("subject not a template", {"steps": [step(data={"subject": "{% if %}"})]}, "steps[0].data.subject"),
    ("create_task without title", {"steps": [step(action_type="create_task", message="", data={})]}, "steps[0].data.title"),
    ("unknown field", {"colour": "blue"}, "colour"),
    ("unknown step field", {"steps": [step(wait=5)]}, "steps[0].wait"),
    ("automatic not a bool", {"automatic": "yes"}, "automatic"),
    ("send_window not an object", {"steps": [step(send_window="9-5")]}, "steps[0].send_window"),
    ("send_window unknown day", {"steps": [step(send_window={"days": ["mon", "fun"], "start": "09:00", "end": "17:00"})]},
     "steps[0].send_window.days"),
    ("send_window bad start", {"steps": [step(send_window={"days": ["mon"], "start": "9am", "end": "17:00"})]},
     "steps[0].send_window.start"),
    ("send_window empty", {"steps": [step(send_window={"days": ["mon"], "start": "09:00", "end": "09:00"})]},
     "steps[0].send_window.end"),
    ("send_window unknown field", {"steps": [step(send_window={"days": ["mon"], "start": "09:00", "end": "17:00", "tz": "UTC"})]},
     "steps[0].send_window.tz"),
    ("wait_until both targets", {"steps": [step(wait_until={"until": "2031-03-01T09:00:00", "until_attribute": "x"})]},
     "steps[0].wait_until"),
    ("wait_until not a date", {"steps": [step(wait_until={"until": "soon"})]}, "steps[0].wait_until.until"),
    ("wait_until bad rule", {"steps": [step(wait_until={"until_attribute": "x", "if_missing": "maybe"})]},
     "steps[0].wait_until.if_missing"),
    ("wait_until with a delay", {"steps": [step(delay_seconds=60, wait_until={"until_attribute": "x"})]},
     "steps[0].delay_seconds"),
    ("exit_when not an object", {"exit_when": "paid"}, "exit_when"),
    ("exit_when without an operator", {"exit_when": {"attribute": "plan"}}, "exit_when"),
    ("exit_when unknown operator", {"exit_when": {"attribute": "plan", "equal": "paid"}}, "exit_when.equal"),
    ("exit_when unknown field", {"exit_when": {"field": "stage", "equals": "won"}}, "exit_when.field"),
    ("exit_when in not a list", {"exit_when": {"attribute": "plan", "in": "paid"}}, "exit_when.in"),
    ("exit_when exists not a bool", {"exit_when": {"attribute": "plan", "exists": 1}}, "exit_when.exists"),
    ("exit_when empty any", {"exit_when": {"all": [{"attribute": "plan", "exists": True}, {"any": []}]}}, "exit_when.all[1].any"),
    ("exit_when null value", {"exit_when": {"any": [{"attribute": "plan", "equals": None}]}}, "exit_when.any[0].equals"),
]


def _body(changes):
    body = pipeline_body()
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    return body


def test_invalid_pipelines_are_422_naming_the_field_and_write_nothing(api, snapshot):
    before = snapshot()
    answers, expected = {}, {}
    for name, changes, field in PIPELINE_CASES:
        reply = api.post("/pipelines", _body(changes))
        answers[name] = (reply.status, reply.body.get("field"), reply.body.get("message", "").startswith(f"{field}: "))
        expected[name] = (422, field, True)

    assert answers == expected
    assert snapshot() == before


def test_invalid_pipeline_update_is_422_and_keeps_the_version(api, snapshot):
    pipeline = api.post("/pipelines", pipeline_body()).body
    before = snapshot()

    for changes, field in [c[1:] for c in PIPELINE_CASES]:
        reply = api.put(f"/pipelines/{pipeline['pipeline_id']}", _body(changes))
        assert (reply.status, reply.body.get("field")) == (422, field), changes

    assert snapshot() == before
    assert api.get(f"/pipelines/{pipeline['pipeline_id']}").body["version"] == 1


def test_steps_too_large_to_store_are_refused(api, snapshot):
    # 3 x 27,000 CJK characters: ~243 KB of UTF-8 in the body (under 256 KiB), but JSON
    # escapes each as \\uXXXX once stored: ~486 KB, over DynamoDB's 400 KB item.
    steps = [step(step_number=n, message="語" * 27_000) for n in (1, 2, 3)]
    raw = json.dumps(pipeline_body(steps=steps), ensure_ascii=False)
    assert len(raw.encode()) < 256 * 1024
    before = snapshot()

    reply = api.post("/pipelines", raw_body=raw)

    assert (reply.status, reply.body["field"]) == (422, "steps")
    assert snapshot() == before


def test_malformed_json_is_400(api, snapshot):
    before = snapshot()
    reply = api.post("/pipelines", raw_body='{"name": "Welcome",')
    assert (reply.status, reply.body["field"]) == (400, "body")
    assert api.post("/contacts", raw_body="{email").status == 400
    assert snapshot() == before


def test_a_json_body_that_is_not_an_object_is_422(api):
    reply = api.post("/contacts", raw_body="[1, 2]")
    assert (reply.status, reply.body["field"]) == (422, "body")


def test_a_body_over_256_kib_is_413_before_parsing(api, snapshot):
    before = snapshot()
    reply = api.post("/pipelines", raw_body="{" + " " * (256 * 1024))
    assert (reply.status, reply.body["field"]) == (413, "body")
    assert snapshot() == before


def test_an_archived_pipeline_cannot_be_updated(api, snapshot):
    pipeline = api.post("/pipelines", pipeline_body()).body
    api.delete(f"/pipelines/{pipeline['pipeline_id']}")
    before = snapshot()

    assert api.put(f"/pipelines/{pipeline['pipeline_id']}", pipeline_body()).status == 409
    assert api.put(f"/automatic-pipelines/{pipeline['pipeline_id']}").status == 409
    assert snapshot() == before


# --- contacts ------------------------------------------------------------------------------------


@pytest.fixture
def pipelines(api):
    active = api.post("/pipelines", pipeline_body(automatic=False)).body["pipeline_id"]
    archived = api.post("/pipelines", pipeline_body(automatic=False)).body["pipeline_id"]
    assert api.delete(f"/pipelines/{archived}").status == 204
    return {"active": active, "archived": archived}


CONTACT_CASES = [
    ("email missing", {"email": None}, "email"),
    ("email invalid", {"email": "ada-at-example.com"}, "email"),
    ("email without domain dot", {"email": "ada@localhost"}, "email"),
    ("email with spaces", {"email": "ada lovelace@example.com"}, "email"),
    ("email not a string", {"email": 42}, "email"),
    ("timezone unknown", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("timezone an offset", {"timezone": "+02:00"}, "timezone"),
    ("51 attributes", {"attributes": {f"k{i}": i for i in range(51)}}, "attributes"),
    ("attributes not an object", {"attributes": ["plan"]}, "attributes"),
    ("nested empty attribute key", {"attributes": {"plan": {"": 1}}}, "attributes"),
    ("first_name too long", {"first_name": "x" * 201}, "first_name"),
    ("pipeline unknown", {"pipeline_ids": ["nope"]}, "pipeline_ids"),
    ("pipeline archived", {"pipeline_ids": ["<archived>"]}, "pipeline_ids"),
    ("one good one unknown", {"pipeline_ids": ["<active>", "nope"]}, "pipeline_ids"),
    ("pipeline_ids not a list", {"pipeline_ids": "<active>"}, "pipeline_ids"),
    ("unknown field", {"phone": "555"}, "phone"),
]


def _contact(changes, pipelines):
    body = contact_body()
    for key, value in changes.items():
        if value is None:
            body.pop(key)
            continue
        text = json.dumps(value).replace("<active>", pipelines["active"]).replace("<archived>", pipelines["archived"])
        body[key] = json.loads(text)
    return body


def test_invalid_contacts_are_422_naming_the_field_and_write_nothing(api, snapshot, pipelines):
    before = snapshot()
    answers, expected = {}, {}
    for name, changes, field in CONTACT_CASES:
        reply = api.post("/contacts", _contact(changes, pipelines))
        answers[name] = (reply.status, reply.body.get("field"), field in reply.body.get("message", ""))
        expected[name] = (422, field, True)

    assert answers == expected
    assert snapshot() == before


def test_attribute_numbers_must_be_finite(api, snapshot):
    before = snapshot()
    reply = api.post("/contacts", raw_body='{"email": "ada@example.com", "attributes": {"score": NaN}}')
    assert (reply.status, reply.body["field"]) == (422, "attributes")
    assert snapshot() == before


def test_attribute_numbers_must_fit_dynamodb(api, snapshot):
    before = snapshot()
    for number in ("1e-200", "1e200", "1" * 39):
        reply = api.post("/contacts", raw_body='{"email": "ada@example.com", "attributes": {"score": %s}}' % number)
        assert (reply.status, reply.body["field"]) == (422, "attributes"), number
    assert api.post("/contacts", {"email": "ada@example.com", "attributes": {"score": 1e-100, "big": 10**37}}).status == 201
    assert len(snapshot()["contacts_table"]) == len(before["contacts_table"]) + 1


PATCH_CASES = [
    ("email null", {"email": None}, "email"),
    ("email invalid", {"email": "nope"}, "email"),
    ("timezone unknown", {"timezone": "Nowhere/Special"}, "timezone"),
    ("attributes null", {"attributes": None}, "attributes"),
    ("51 attributes", {"attributes": {f"k{i}": i for i in range(51)}}, "attributes"),
    # DynamoDB has no empty attribute name at any depth (this was a 500 on PATCH, found by the fuzzer).
    ("nested empty attribute key", {"attributes": {"h": {"": False}}}, "attributes"),
    ("pipeline_ids null", {"pipeline_ids": None}, "pipeline_ids"),
    ("pipeline unknown", {"pipeline_ids": ["nope"]}, "pipeline_ids"),
    ("pipeline archived", {"pipeline_ids": ["<archived>"]}, "pipeline_ids"),
    ("unsubscribed not a bool", {"unsubscribed": "yes"}, "unsubscribed"),
    ("unsubscribed null", {"unsubscribed": None}, "unsubscribed"),
    ("unknown field", {"contact_id": "other"}, "contact_id"),
]


def test_invalid_patches_are_422_naming_the_field_and_change_nothing(api, snapshot, pipelines):
    contact = api.post("/contacts", contact_body()).body
    before = snapshot()

    for name, changes, field in PATCH_CASES:
        body = json.loads(json.dumps(changes).replace("<archived>", pipelines["archived"]))
        reply = api.patch(f"/contacts/{contact['contact_id']}", body)
        assert (reply.status, reply.body.get("field")) == (422, field), name

    assert snapshot() == before


def test_assigning_an_unknown_or_archived_pipeline_is_422(api, snapshot, pipelines):
    contact = api.post("/contacts", contact_body()).body
    before = snapshot()

    for pipeline_id in ("nope", pipelines["archived"]):
        reply = api.post(f"/contacts/{contact['contact_id']}/runs", {"pipeline_id": pipeline_id})
        assert (reply.status, reply.body["field"]) == (422, "pipeline_id")
    reply = api.post(f"/contacts/{contact['contact_id']}/runs", {})
    assert (reply.status, reply.body["field"]) == (422, "pipeline_id")
    assert snapshot() == before


# --- queries and tasks -----------------------------------------------------------------------------


QUERY_CASES = [
    ("/runs", {"status": "sleeping"}, "status"),
    ("/runs", {"limit": "0"}, "limit"),
    ("/runs", {"limit": "101"}, "limit"),
    ("/runs", {"limit": "ten"}, "limit"),
    ("/contacts", {"limit": "1000"}, "limit"),
    ("/pipelines", {"limit": "-1"}, "limit"),
    ("/tasks", {"status": "later"}, "status"),
]


def test_invalid_query_parameters_are_422(api):
    answers, expected = {}, {}
    for path, query, field in QUERY_CASES:
        reply = api.get(path, query=query)
        answers[f"{path} {query}"] = (reply.status, reply.body.get("field"))
        expected[f"{path} {query}"] = (422, field)

    assert answers == expected


def test_a_task_status_must_be_open_or_done(api, snapshot):
    before = snapshot()
    reply = api.patch("/tasks/whatever", {"status": "finished"})
    assert (reply.status, reply.body["field"]) == (422, "status")
    assert snapshot() == before


def test_a_body_is_json_whatever_its_content_type(api):
    # curl -d sends application/x-www-form-urlencoded; the API speaks only JSON
    event = api.event("POST", "/contacts", {"email": "form@example.com"})
    event["headers"]["content-type"] = "application/x-www-form-urlencoded"
    assert api.send(event).status == 201
    event = api.event("POST", "/contacts", raw_body="email=form@example.com")
    event["headers"]["content-type"] = "application/x-www-form-urlencoded"
    assert api.send(event).status == 400


def test_a_base64_encoded_body_is_decoded(api):
    event = api.event("POST", "/contacts", raw_body=base64.b64encode(b'{"email": "b64@example.com"}').decode())
    event["isBase64Encoded"] = True
    reply = api.send(event)
    assert reply.status == 201 and reply.body["email"] == "b64@example.com"
