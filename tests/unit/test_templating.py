"""Templates are a small, bounded language: contact data in, text out, nothing else."""
import pytest
from jinja2.exceptions import SecurityError

from dripline import templating
from dripline.errors import ValidationFailed

CONTACT = {"contact": {"first_name": "Ada", "email": "ada@example.com", "attributes": {"plan": "pro", "tags": ["a", "b"]}}}


def test_renders_contact_fields():
    assert templating.render_text("Hi {{ contact.first_name }} ({{ contact.attributes.plan }})", CONTACT) == "Hi Ada (pro)"


def test_html_is_autoescaped():
    assert templating.render_html("{{ contact.first_name }}", {"contact": {"first_name": "<b>"}}) == "&lt;b&gt;"


def test_the_allowed_language_covers_what_drip_emails_need():
    source = (
        "{% if contact.first_name %}Hi {{ contact.first_name|title }}{% else %}Hello{% endif %}, "
        "{{ contact.attributes.missing|default('friend') }}; "
        "{% for tag in contact.attributes.tags %}[{{ loop.index }}:{{ tag|upper }}]{% endfor %} "
        "{{ contact.attributes.tags|join(', ') }} {{ contact.email ~ '!' }} "
        "{% for key, value in contact.attributes|dictsort %}{{ key }}={{ value }} {% endfor %}"
    )
    templating.check(source)
    assert templating.render_text(source, CONTACT) == (
        "Hi Ada, friend; [1:A][2:B] a, b ada@example.com! plan=pro tags=['a', 'b'] "
    )


# Each of these passed the earlier sandbox-only check and could eat the processor's
# memory or time (found in review), or reach Python internals.
REFUSED = [
    "{{ contact.__class__.__mro__ }}",
    "{% for i in range(100000) %}x{% endfor %}",
    "{{ 'x' * 100000000 }}",
    "{{ 10 ** 100000000 }}",
    "{{ '%20000000s' % 'x' }}",
    "{{ '{:>20000000}'.format('x') }}",
    "{{ 'x'|center(20000000) }}",
    "{{ 'a\nb'|indent(20000000) }}",
    "{{ contact.email|replace('', contact.email) }}",
    "{{ lipsum(n=20000) }}",
    "{% set ns = namespace(s='x') %}{% for t in contact.attributes.tags %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% for x in contact.attributes.tags recursive %}{{ loop(contact.attributes.tags) }}{% endfor %}",
    "{% macro m() %}{% for t in contact.attributes.tags %}.{% endfor %}{% endmacro %}{{ m() }}",
    "{% for a in contact.attributes.tags %}{% for b in contact.attributes.tags %}.{% endfor %}{% endfor %}",
    "{% include 'other' %}",
    "{{ contact.email|join(contact.email) }}",
    "{{ contact.attributes.tags|join('-------------------------------') }}",
]


@pytest.mark.parametrize("source", REFUSED)
def test_anything_outside_the_language_is_refused_when_saved_and_when_rendered(source):
    with pytest.raises(ValidationFailed) as caught:
        templating.check(source, "message")
    assert caught.value.field == "message"
    with pytest.raises(SecurityError):
        templating.render_text(source, CONTACT)


def test_output_is_capped_even_for_large_contact_data():
    big = {"contact": {"attributes": {"text": "y" * 200_000}}}
    source = "{% for c in contact.attributes.text %}{{ contact.attributes.text }}{% endfor %}"
    templating.check(source)
    with pytest.raises(SecurityError):
        templating.render_text(source, big)


def test_syntax_errors_name_the_field_and_line():
    with pytest.raises(ValidationFailed) as caught:
        templating.check("Hi {{ contact.first_name ", "data.subject")
    assert caught.value.field == "data.subject" and "line 1" in caught.value.message


# Issue 8, finding 1: amplification through values the template builds. Each one is
# refused when saved, and the render budget stops it even if it were not.
AMPLIFYING = [
    "{% for c in 'a'" + "|list|string" * 9 + "|list %}{% endfor %}done",
    "{{ 'a'" + "|list|string" * 12 + " }}",
]
SUBJECT_AMPLIFYING = "{{ 'a'" + "|list|string" * 8 + " }}"  # 390,625 characters: see the email tests


@pytest.mark.parametrize("source", [*AMPLIFYING, SUBJECT_AMPLIFYING, "{{ ['a', 'b']|string|list|string }}"])

def test_amplifying_templates_are_refused_when_saved(source):
    with pytest.raises(ValidationFailed, match="string applies only to data"):
        templating.check(source, "message")


def unchecked_render(monkeypatch, source, context):
    """Render without the save-time rules: what the budget alone does."""
    monkeypatch.setattr(templating, "_check_node", lambda node, names: None)
    templating.compiled.cache_clear()
    try:
        return templating.render_text(source, context)
    finally:
        templating.compiled.cache_clear()


@pytest.mark.parametrize("source", AMPLIFYING)
def test_the_render_budget_bounds_amplification_by_itself(monkeypatch, source):
    with pytest.raises(templating.RenderBudgetExceeded, match="larger than"):
        unchecked_render(monkeypatch, source, CONTACT)


def test_many_references_to_one_large_value_are_measured_before_they_are_joined(monkeypatch):
    big = {"contact": {"attributes": {"text": "y" * 300_000}}}
    refs = ", ".join(["contact.attributes.text"] * 1000)
    for source in (
        "{{ contact.attributes.text" + " ~ contact.attributes.text" * 1000 + " }}",
        "{% for l in [[" + refs + "]] %}{{ l|string }}{% endfor %}",
        "{{ [" + refs + "] }}",
        "{% for l in [[" + refs + "]] %}{{ l|join(',') }}{% endfor %}",
    ):
        with pytest.raises(templating.RenderBudgetExceeded):
            unchecked_render(monkeypatch, source, big)


def test_loops_are_counted():
    many = {"contact": {"attributes": {"items": list(range(templating.MAX_LOOP_ITEMS + 1))}}}
    source = "{% for i in contact.attributes['items'] %}.{% endfor %}"
    templating.check(source)
    with pytest.raises(templating.RenderBudgetExceeded, match="loops may run at most"):
        templating.render_text(source, many)


def test_a_slow_render_is_stopped_by_the_clock(monkeypatch):
    monkeypatch.setattr(templating, "RENDER_SECONDS", 0.0)
    with pytest.raises(templating.RenderBudgetExceeded, match="longer than"):
        templating.render_text("{{ contact.first_name }}", CONTACT)


# Finding 4: object internals, and the names Jinja would otherwise provide.
INTERNALS = [
    "{{ lipsum }}",
    "{{ cycler }}",
    "{{ joiner }}",
    "{{ namespace }}",
    "{{ self }}",
    "{{ range }}",
    "{{ contact.keys }}",
    "{{ contact.attributes.items }}",
    "{{ contact['__class__'] }}",
    "{{ contact['_private'] }}",
]


@pytest.mark.parametrize("source", INTERNALS)
def test_object_internals_are_refused_when_saved(source):
    with pytest.raises(ValidationFailed):
        templating.check(source, "message")


@pytest.mark.parametrize("source", [s for s in INTERNALS if s != "{{ self }}"])
def test_object_internals_render_as_nothing_even_unchecked(monkeypatch, source):
    assert unchecked_render(monkeypatch, source, CONTACT) == ""


def test_printing_an_object_fails_the_render_even_unchecked(monkeypatch):
    with pytest.raises(SecurityError, match="not data"):
        unchecked_render(monkeypatch, "{{ self }}", CONTACT)


def test_fields_named_like_dict_methods_are_read_with_brackets():
    context = {"contact": {"attributes": {"items": 3, "keys": "k"}}}
    assert templating.render_text("{{ contact.attributes['items'] }} {{ contact.attributes['keys'] }}", context) == "3 k"


# Finding 6: a render error never carries a contact's value.
def test_render_errors_name_the_line_not_the_value():
    context = {"contact": {"email": "ann@example.com", "first_name": "Ann", "attributes": {}}}
    with pytest.raises(templating.RenderFailed) as caught:
        templating.render_text("Hi\n{{ contact.attributes[contact.email] + 1 }}", context)
    message = str(caught.value)
    assert "line 2" in message and "ann@example.com" not in message and caught.value.__cause__ is None


def test_templates_are_compiled_once_per_source():
    templating.compiled.cache_clear()
    for name in ("Ann", "Bob", "Cy"):
        templating.render_text("Hi {{ contact.first_name }}", {"contact": {"first_name": name}})
    info = templating.compiled.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_any_data_prints():
    from datetime import datetime, timezone
    from decimal import Decimal

    values = {"n": Decimal("3"), "f": 1.5, "b": True, "none": None, "tags": {"x"}, "at": datetime(2026, 1, 2, tzinfo=timezone.utc)}
    source = "{{ contact.attributes.n }} {{ contact.attributes.f }} {{ contact.attributes.b }} {{ contact.attributes.none }} " \
             "{{ contact.attributes.tags }} {{ contact.attributes.at }}"
    assert templating.render_text(source, {"contact": {"attributes": values}}) == "3 1.5 True None {'x'} 2026-01-02 00:00:00+00:00"
