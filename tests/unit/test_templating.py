"""Templates are a small, bounded language: contact data in, text out, nothing else."""
import pytest
from jinja2.exceptions import SecurityError

from dripline import templating
from dripline.errors import ValidationFailed

CONTACT = {"contact": {"first_name": "Ada", "email": "ada@example.com", "attributes": {"plan": "pro", "tags": ["a", "b"]}}}


def test_renders_contact_fields():
    assert templating.render_text("Hi {{ contact.first_name }} ({{ contact.attributes.plan }})", CONTACT) == "Hi Ada (pro)"


def test_html_is_autoescaped():
    assert templating.render_html("{{ x }}", {"x": "<b>"}) == "&lt;b&gt;"


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
