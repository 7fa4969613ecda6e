"""Render cost of a typical step template: cached compile (what the processor does) vs
compiling every time, and the budget's share. Run: `.venv/bin/python -m benchmarks.template_render`."""
from __future__ import annotations

import timeit

from dripline import templating

SOURCE = (
    "{% if contact.first_name %}Hi {{ contact.first_name|title }}{% else %}Hello{% endif %}, "
    "{% for tag in contact.attributes.tags %}[{{ loop.index }}:{{ tag|upper }}]{% endfor %} "
    "{{ contact.attributes.tags|join(', ') }} {{ contact.email ~ '!' }} <a href='{{ unsubscribe_url }}'>unsubscribe</a>"
)
CONTEXT = {
    "contact": {"first_name": "ada", "email": "ada@example.com", "attributes": {"plan": "pro", "tags": ["a", "b", "c"]}},
    "unsubscribe_url": "https://example.com/unsubscribe/token",
}
RENDERS = 2000


def per_render_us(render) -> float:
    return min(timeit.repeat(render, number=RENDERS, repeat=3)) / RENDERS * 1e6


def main() -> None:
    def recompiling() -> str:
        templating.compiled.cache_clear()
        return templating.render_text(SOURCE, CONTEXT)

    cached = per_render_us(lambda: templating.render_text(SOURCE, CONTEXT))
    fresh = per_render_us(recompiling)
    print(f"{'cached compile (processor)':>28}: {cached:8.1f} us per render")
    print(f"{'compile every render':>28}: {fresh:8.1f} us per render ({fresh / cached:.0f}x)")


if __name__ == "__main__":
    main()
