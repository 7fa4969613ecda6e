"""Step messages are Jinja2 templates, rendered in the sandbox (users write them)."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from dripline.errors import ValidationFailed


@lru_cache(maxsize=1)
def _text_env() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=1)
def _html_env() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=True, keep_trailing_newline=True)


def check(source: str, field: str = "message") -> None:
    """Raise ValidationFailed if `source` does not compile as a template."""
    try:
        _text_env().parse(source)
    except TemplateSyntaxError as exc:
        raise ValidationFailed(field, f"template error on line {exc.lineno}: {exc.message}") from exc


def render_text(source: str, context: dict[str, Any]) -> str:
    return _text_env().from_string(source).render(**context)


def render_html(source: str, context: dict[str, Any]) -> str:
    """Autoescaped: a contact named <script> stays text. Newlines become <br>."""
    body = _html_env().from_string(source).render(**context)
    return str(body).replace("\n", "<br>\n")
