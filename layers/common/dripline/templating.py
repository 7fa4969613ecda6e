"""Step messages are Jinja2 templates, rendered in a bounded sandbox (users write them).

The sandbox blocks Python internals; the bounds below keep one team's template from
eating a processor that other teams' runs share: ranges are short, loops cannot nest,
`*`/`**` cannot build huge values, and output stops at MAX_OUTPUT characters.
"""
from __future__ import annotations

import operator
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from dripline.errors import ValidationFailed

MAX_RANGE = 1000
MAX_REPEAT = 10_000  # longest string/list `*` may build
MAX_EXPONENT = 100
MAX_OUTPUT = 1_000_000  # characters of rendered text


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE} items")
    return result


class BoundedSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _bounded_range

    def call_binop(self, context, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            for sized, count in ((left, right), (right, left)):
                if isinstance(sized, (str, list, tuple)) and isinstance(count, int) and count * max(1, len(sized)) > MAX_REPEAT:
                    raise SecurityError("repetition too large")
            return operator.mul(left, right)
        if operator_name == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError("exponent too large")
            return operator.pow(left, right)
        return super().call_binop(context, operator_name, left, right)


@lru_cache(maxsize=1)
def _text_env() -> BoundedSandbox:
    return BoundedSandbox(autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=1)
def _html_env() -> BoundedSandbox:
    return BoundedSandbox(autoescape=True, keep_trailing_newline=True)


def check(source: str, field: str = "message") -> None:
    """Raise ValidationFailed if `source` does not compile, or nests loops."""
    try:
        tree = _text_env().parse(source)
    except TemplateSyntaxError as exc:
        raise ValidationFailed(field, f"template error on line {exc.lineno}: {exc.message}") from exc
    for loop in tree.find_all(nodes.For):
        if any(True for _ in loop.find_all(nodes.For)):
            raise ValidationFailed(field, f"loops may not be nested (line {loop.lineno})")


def _render(env: BoundedSandbox, source: str, context: dict[str, Any]) -> str:
    parts: list[str] = []
    size = 0
    for chunk in env.from_string(source).generate(**context):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise SecurityError(f"rendered text is longer than {MAX_OUTPUT} characters")
        parts.append(chunk)
    return "".join(parts)


def render_text(source: str, context: dict[str, Any]) -> str:
    return _render(_text_env(), source, context)


def render_html(source: str, context: dict[str, Any]) -> str:
    """Autoescaped: a contact named <script> stays text. Newlines become <br>."""
    return _render(_html_env(), source, context).replace("\n", "<br>\n")
