"""The model-type registry (dripline.records): what differs between contacts and deals, with no AWS."""
import pytest

from dripline import records, templating
from dripline.domain import ContactView, DealView
from dripline.errors import ValidationFailed


def test_a_stream_record_says_its_type_by_its_keys():
    assert records.type_of_keys({"team_id": {"S": "t"}, "contact_id": {"S": "c"}}) is records.CONTACT
    assert records.type_of_keys({"team_id": {"S": "t"}, "deal_id": {"S": "d"}}) is records.DEAL
    with pytest.raises(ValueError):
        records.type_of_keys({"team_id": {"S": "t"}, "company_id": {"S": "x"}})


def test_each_type_names_whom_its_emails_go_to():
    assert records.CONTACT.target(None).name == "contact" and records.CONTACT.target("owner") is None
    assert records.DEAL.target(None) is None  # a deal's email must say: owner or contacts
    assert [t.name for t in records.DEAL.email_targets] == ["owner", "contacts"]


def test_a_deal_without_owner_has_no_recipient_and_reads_nothing():
    nobody = DealView(team_id="t", deal_id="d", name="Renewal")
    record = records.Record(type="deal", team_id="t", id="d", fields=nobody.template_context(), view=nobody)
    assert records.DEAL.target("owner").recipients(record) == []


@pytest.mark.parametrize("model_type, to, source, allowed", [
    ("deal", "owner", "{{ deal.name }} {{ pipeline.name }}", True),
    ("deal", "owner", "{{ contact.first_name }}", False),
    ("deal", "owner", "{{ unsubscribe_url }}", False),
    ("deal", "contacts", "{{ contact.first_name }} {{ deal.name }} {{ unsubscribe_url }}", True),
    ("contact", "contact", "{{ contact.first_name }} {{ unsubscribe_url }}", True),
    ("contact", "contact", "{{ deal.name }}", False),
])
def test_templates_may_name_only_what_their_step_will_have(model_type, to, source, allowed):
    names = records.template_names(model_type, records.get(model_type).target(to))
    if allowed:
        templating.check(source, "message", names=names)
    else:
        with pytest.raises(ValidationFailed):
            templating.check(source, "message", names=names)


def test_a_contact_renders_as_contact_and_a_deal_as_deal():
    contact = ContactView(team_id="t", contact_id="c", email="ada@example.com", first_name="Ada")
    context = records.template_context(records.contact_record(contact), "Welcome")
    assert context["contact"]["first_name"] == "Ada" and context["pipeline"] == {"name": "Welcome"}
    deal = DealView(team_id="t", deal_id="d", name="Renewal", value=12000, contact_ids=("c",))
    record = records.Record(type="deal", team_id="t", id="d", fields=deal.template_context(), view=deal)
    context = records.template_context(record, "Deals", records.EmailRecipient("ada@example.com", contact), "https://u")
    assert (context["deal"]["value"], context["contact"]["first_name"], context["unsubscribe_url"]) == (12000, "Ada", "https://u")
    assert records.get("deal") is records.DEAL
    with pytest.raises(LookupError):
        records.get("company")


def test_every_record_type_has_a_run_id_letter_and_its_run_ids_name_their_owner():
    from dripline.storage import runs
    from dripline.storage.models import run_owner

    for name in records.NAMES:
        owner = run_owner("acme", name, "x1")
        run_id = runs._run_id(owner, "p1", 0)
        assert runs.owner_of("acme", run_id) == owner
