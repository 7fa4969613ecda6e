"""Templates render in a bounded sandbox: no internals, no runaway loops or values."""
import pytest
from jinja2.exceptions import SecurityError

from dripline import templating
from dripline.errors import ValidationFailed

CONTACT = {"contact": {"first_name": "Ada", "attributes": {"plan": "pro"}}}


def test_renders_contact_fields():
    assert templating.render_text("Hi {{ contact.first_name }} ({{ contact.attributes.plan }})", CONTACT) == "Hi Ada (pro)"


def test_html_is_autoescaped():
    assert templating.render_html("{{ x }}", {"x": "<b>"}) == "&lt;b&gt;"


@pytest.mark.parametrize(
    "source",
    [
        "{{ contact.__class__.__mro__ }}",
        "{% for i in range(100000) %}x{% endfor %}",
        "{{ 'x' * 100000000 }}",
        "{{ 10 ** 100000000 }}",
        "{% for i in range(1000) %}{{ 'y' * 5000 }}{% endfor %}",  # 5 MB of output
    ],
)
def test_runaway_or_unsafe_templates_stop_with_a_security_error(source):
    with pytest.raises(SecurityError):
        templating.render_text(source, CONTACT)


def test_nested_loops_are_rejected_when_the_step_is_saved():
    with pytest.raises(ValidationFailed) as caught:
        templating.check("{% for a in range(9) %}{% for b in range(9) %}.{% endfor %}{% endfor %}", "message")
    assert caught.value.field == "message" and "nested" in caught.value.message


def test_single_loops_and_conditionals_are_fine():
    source = "{% if contact.first_name %}Hi {{ contact.first_name }}{% endif %}{% for k in contact.attributes %} {{ k }}{% endfor %}"
    templating.check(source)
    assert templating.render_text(source, CONTACT) == "Hi Ada plan"
