"""Issue 8, findings 1, 3 and 4 through the API: what a template may not do is refused
when the pipeline is saved (422 naming the field), and nothing is written."""
import pytest

from tests.api.conftest import pipeline_body

AMPLIFY_LOOP = "{% for c in 'a'" + "|list|string" * 9 + "|list %}{% endfor %}done"
AMPLIFY_SUBJECT = "{{ 'a'" + "|list|string" * 8 + " }}"


def email_step(message="Hi", subject="Hello"):
    return {"step_number": 1, "action_type": "send_email", "delay_seconds": 0, "message": message, "data": {"subject": subject}}


def task_step(title):
    return {"step_number": 1, "action_type": "create_task", "delay_seconds": 0, "message": "Call", "data": {"title": title}}


CASES = [
    # finding 1: amplification
    ("amplifying loop", email_step(message=AMPLIFY_LOOP), "steps[0].message"),
    ("amplifying subject", email_step(subject=AMPLIFY_SUBJECT), "steps[0].data.subject"),
    # finding 3: a task's title is a template too
    ("title reaches internals", task_step("{{ ''.__class__.__mro__ }}"), "steps[0].data.title"),
    ("title calls range", task_step("{{ range(10) }}"), "steps[0].data.title"),
    ("title nests loops", task_step("{% for a in contact.x %}{% for b in contact.x %}.{% endfor %}{% endfor %}"),
     "steps[0].data.title"),
    ("title amplifies", task_step(AMPLIFY_SUBJECT), "steps[0].data.title"),
    # finding 4: object internals
    ("lipsum", email_step(message="{{ lipsum }}"), "steps[0].message"),
    ("cycler", email_step(message="{{ cycler }}"), "steps[0].message"),
    ("self", email_step(subject="{{ self }}"), "steps[0].data.subject"),
    ("dict method", email_step(message="{{ contact.keys }}"), "steps[0].message"),
    ("dunder item", email_step(message="{{ contact['__class__'] }}"), "steps[0].message"),
]


@pytest.mark.parametrize(("name", "step", "field"), CASES, ids=[c[0] for c in CASES])
def test_unsafe_templates_are_422_naming_the_field_and_write_nothing(api, snapshot, name, step, field):
    before = snapshot()

    reply = api.post("/pipelines", {**pipeline_body(), "steps": [step]})

    assert (reply.status, reply.body.get("field")) == (422, field)
    assert reply.body["message"].startswith(f"{field}: ")
    assert snapshot() == before


def test_a_task_title_in_the_language_is_accepted(api):
    reply = api.post("/pipelines", {**pipeline_body(), "steps": [task_step("Call {{ contact.first_name|title }}")]})
    assert reply.status == 201
