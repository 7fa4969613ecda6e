"""Step messages are Jinja2 templates that users write, rendered by a processor that
every team shares. So they are checked against a small language, not just sandboxed:

- allowed: `{{ contact.first_name }}`, attribute/item access, `{% if %}`, one level of
  `{% for %}` over data, comparisons and tests, `~`/`+`, and the filters in FILTERS;
- refused: any call (`range()`, `x.format()`, `lipsum()` ...), `_private` attributes, `{% set %}`, macros,
  includes, recursive loops, nested loops, `*`/`**`/`%`, and amplifying filters
  (`center`, `indent`, `replace`, `format` ...).

What is left can only walk the data it is given, so its work is bounded by the contact's
size; the output is capped too. `check` runs when a pipeline is saved (the API answers
422) and again before every render (a SecurityError fails the step).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from dripline.errors import ValidationFailed

MAX_OUTPUT = 1_000_000  # characters of rendered text
MAX_SEPARATOR = 10

ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.Getattr, nodes.Getitem,
    nodes.Slice, nodes.List, nodes.Tuple, nodes.If, nodes.For, nodes.CondExpr, nodes.And, nodes.Or, nodes.Not,
    nodes.Compare, nodes.Operand, nodes.Test, nodes.Filter, nodes.Keyword, nodes.Concat, nodes.Add,
)  # fmt: skip
FILTERS = frozenset({
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "int", "items",
    "join", "last", "length", "list", "lower", "reverse", "round", "sort", "string", "striptags", "title", "trim",
    "truncate", "unique", "upper", "urlencode", "wordcount",
})  # fmt: skip


class TemplateRefused(ValueError):
    """The template uses something outside the allowed language."""


@lru_cache(maxsize=1)
def _text_env() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=1)
def _html_env() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=True, keep_trailing_newline=True)


def check(source: str, field: str = "message") -> None:
    """Raise ValidationFailed if `source` does not compile or leaves the allowed language."""
    try:
        _checked(source)
    except TemplateSyntaxError as exc:
        raise ValidationFailed(field, f"template error on line {exc.lineno}: {exc.message}") from exc
    except TemplateRefused as exc:
        raise ValidationFailed(field, str(exc)) from exc


@lru_cache(maxsize=512)
def _checked(source: str) -> None:
    tree = _text_env().parse(source)
    for node in tree.find_all(nodes.Node):
        line = f"(line {node.lineno})"
        if not isinstance(node, ALLOWED_NODES):
            raise TemplateRefused(f"{type(node).__name__.lower()} is not allowed in templates {line}")
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise TemplateRefused(f"the attribute {node.attr!r} is not allowed {line}")
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            raise TemplateRefused(f"the filter {node.name!r} is not allowed {line}")
        if isinstance(node, nodes.Filter) and node.name == "join" and not _short_constant_args(node):
            # A long separator between many items amplifies: only short literal ones.
            raise TemplateRefused(f"join takes only a literal separator of at most {MAX_SEPARATOR} characters {line}")
        if isinstance(node, nodes.For) and (node.recursive or any(True for _ in node.find_all(nodes.For))):
            raise TemplateRefused(f"loops may not be recursive or nested {line}")


def _short_constant_args(node: nodes.Filter) -> bool:
    arguments = list(node.args) + [k.value for k in node.kwargs]
    return all(isinstance(a, nodes.Const) and isinstance(a.value, str) and len(a.value) <= MAX_SEPARATOR for a in arguments)


def _render(env: SandboxedEnvironment, source: str, context: dict[str, Any]) -> str:
    try:
        _checked(source)
    except TemplateRefused as exc:
        raise SecurityError(str(exc)) from exc
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
