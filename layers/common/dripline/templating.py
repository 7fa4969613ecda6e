"""Step messages are Jinja2 templates that users write, rendered by a processor that
every team shares. Two defences, each enough on its own for what it covers:

1. **A checked small language** (`check`, when a pipeline is saved: the API answers
   422; and again before a template is compiled):
   - allowed: `{{ contact.first_name }}`, attribute/item access, `{% if %}`, one level of
     `{% for %}` over data, comparisons and tests, `~`/`+`, and the filters in FILTERS;
     the only names are the context's (CONTEXT_NAMES), `loop` and loop variables;
   - refused: any call (`range()`, `x.format()`, `lipsum()` ...), other names (`lipsum`,
     `cycler`, `self` ...), `_private` attributes and items, dict methods (`contact.keys`),
     `{% set %}`, macros, includes, recursive or nested loops, `*`/`**`/`%`, amplifying
     filters (`center`, `indent`, `replace`, `format` ...), `string` of anything but data
     (the repr of a list is five times the list: `'a'|list|string|list|string...`), and
     `join` with a long separator.
2. **A render budget** that makes amplification impossible by construction, whatever
   slipped through the check: every filter result, `+`, `~`, loop item and output value
   is measured before it is built; no intermediate value may exceed MAX_VALUE
   characters or items, all of them together may not exceed MAX_WORK, loops may not run
   more than MAX_LOOP_ITEMS times, the output is capped at MAX_OUTPUT and a render
   stops after RENDER_SECONDS.

3. **Known fields** (`check` only, when a pipeline is saved): a top-level field of a
   context object that it does not have (`contact.frist_name`) is a 422 naming it and
   listing the known ones (dripline.domain.TEMPLATE_FIELDS, one list per record type:
   contact.* and deal.* each have their own).
   Free-form attributes may be missing at render: `contact.attributes.plan` (and any
   lookup below it) renders empty, `| default("free")` supplies a fallback, `{% if
   contact.attributes.plan %}` tests for it. Arithmetic on a missing value still fails.

Compiled templates are cached by source, so rendering a step does not recompile.
Render errors say what went wrong and where, never with the contact's values (they are
logged and stored in the run's history).
"""
from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from numbers import Number
from typing import Any

from jinja2 import Environment, Template, TemplateSyntaxError, nodes, pass_eval_context
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import ChainableUndefined, Context, Undefined, markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment

from dripline.domain import TEMPLATE_FIELDS
from dripline.errors import ValidationFailed
from dripline.records import NAMES as RECORD_TYPE_NAMES

MAX_OUTPUT = 1_000_000  # characters of rendered text
MAX_VALUE = 1_000_000  # characters or items of any value a template builds
MAX_WORK = 5_000_000  # characters and items built, plus loop items and lookups, per render
MAX_LOOP_ITEMS = 10_000  # loop iterations per render
RENDER_SECONDS = 2.0
MAX_SEPARATOR = 10

# Every name some step's context offers: each record type's (dripline.records), the pipeline
# and the contact's unsubscribe link. Which of them one step may use depends on its
# pipeline's model type and its recipients: `check(..., names=records.template_names(...))`.
CONTEXT_NAMES = frozenset({"pipeline", "unsubscribe_url", *RECORD_TYPE_NAMES})
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
# `contact.keys` would print a bound method; `contact['keys']` reads the item.
DICT_METHODS = frozenset(name for name in dir(dict) if not name.startswith("_"))
# What `string` may convert: data as given, not something the template built.
DATA_NODES = (nodes.Name, nodes.Getattr, nodes.Getitem, nodes.Const)


class TemplateRefused(ValueError):
    """The template uses something outside the allowed language."""


class RenderBudgetExceeded(SecurityError):
    """The template did more work than one render may (time, size or loop items)."""


class RenderFailed(Exception):
    """The template failed while rendering (e.g. a value it needs is missing).

    The message names the kind of error and the template line, never a value: it ends
    up in logs and in the run's history.
    """


# --- the allowed language, checked -----------------------------------------------------


def check(source: str, field: str = "message", names: frozenset[str] = CONTEXT_NAMES) -> None:
    """Raise ValidationFailed (naming `field`) if `source` does not compile, leaves the
    language, or uses a context name outside `names`."""
    try:
        _check_fields(_checked_tree(source, names))
    except TemplateSyntaxError as exc:
        raise ValidationFailed(field, f"template error on line {exc.lineno}: {exc.message}") from exc
    except TemplateRefused as exc:
        raise ValidationFailed(field, str(exc)) from exc
    except RecursionError as exc:
        raise ValidationFailed(field, "the template nests too deeply") from exc


def _checked_tree(source: str, names: frozenset[str] = CONTEXT_NAMES) -> nodes.Template:
    tree = _environment(False).parse(source)
    allowed_names = names | _loop_names(tree) | {"loop"}
    for node in tree.find_all(nodes.Node):
        _check_node(node, allowed_names)
    return tree


def _loop_names(tree: nodes.Template) -> set[str]:
    targets = [loop.target for loop in tree.find_all(nodes.For)]
    return {n.name for t in targets for n in (t, *t.find_all(nodes.Name)) if isinstance(n, nodes.Name)}


def _check_fields(tree: nodes.Template) -> None:
    """Every `contact.x` / `contact['x']` (and `deal.x`, `pipeline.x`) names a known field of that
    object: each record type's own list (the template's names were checked against the step's
    record types before this, so `deal.x` on a contact pipeline never gets here)."""
    loop_names = _loop_names(tree)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        owner = node.node
        if not isinstance(owner, nodes.Name) or owner.name in loop_names or owner.name not in TEMPLATE_FIELDS:
            continue
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            name = node.arg.value
        else:
            continue  # a computed key: only known at render
        known = TEMPLATE_FIELDS[owner.name]
        if name not in known:
            raise TemplateRefused(
                f"unknown field {owner.name}.{name} (line {node.lineno}); {owner.name} has {', '.join(known)}"
            )


def _check_node(node: nodes.Node, allowed_names: set[str] | frozenset[str]) -> None:
    line = f"(line {node.lineno})"
    if not isinstance(node, ALLOWED_NODES):
        raise TemplateRefused(f"{type(node).__name__.lower()} is not allowed in templates {line}")
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in allowed_names:
        offered = sorted(n for n in allowed_names if n in CONTEXT_NAMES)
        raise TemplateRefused(f"unknown name {node.name!r}: use {', '.join(offered)} {line}")
    if isinstance(node, nodes.Getattr):
        if node.attr.startswith("_"):
            raise TemplateRefused(f"the attribute {node.attr!r} is not allowed {line}")
        if node.attr in DICT_METHODS:
            raise TemplateRefused(f"{node.attr!r} is a method name: write [{node.attr!r}] for a field of that name {line}")
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        if isinstance(node.arg.value, str) and node.arg.value.startswith("_"):
            raise TemplateRefused(f"the item {node.arg.value!r} is not allowed {line}")
    if isinstance(node, nodes.Filter):
        if node.name not in FILTERS:
            raise TemplateRefused(f"the filter {node.name!r} is not allowed {line}")
        if node.name == "join" and not _short_constant_args(node):
            # A long separator between many items amplifies: only short literal ones.
            raise TemplateRefused(f"join takes only a literal separator of at most {MAX_SEPARATOR} characters {line}")
        if node.name == "string" and not isinstance(node.node, DATA_NODES):
            raise TemplateRefused(f"string applies only to data (a field or a literal), not to a computed value {line}")
    if isinstance(node, nodes.For) and (node.recursive or any(True for _ in node.find_all(nodes.For))):
        raise TemplateRefused(f"loops may not be recursive or nested {line}")


def _short_constant_args(node: nodes.Filter) -> bool:
    arguments = list(node.args) + [k.value for k in node.kwargs]
    return all(isinstance(a, nodes.Const) and isinstance(a.value, str) and len(a.value) <= MAX_SEPARATOR for a in arguments)


# --- the render budget ------------------------------------------------------------------


@dataclass
class _Budget:
    deadline: float
    work_left: int = MAX_WORK
    loop_items_left: int = MAX_LOOP_ITEMS

    def charge(self, units: int) -> None:
        self.work_left -= units
        if self.work_left < 0:
            raise RenderBudgetExceeded(f"the template does too much work (more than {MAX_WORK:,} units)")
        if time.monotonic() > self.deadline:
            raise RenderBudgetExceeded(f"the template took longer than {RENDER_SECONDS} s to render")


_budget: ContextVar[_Budget | None] = ContextVar("dripline_render_budget", default=None)


def _active_budget() -> _Budget:
    budget = _budget.get()
    if budget is None:
        # Only while rendering: Jinja's compile-time constant folding must not evaluate
        # (and so amplify) anything; `Impossible` tells it to leave the work to the render.
        raise nodes.Impossible()
    return budget


def _size(value: Any, limit: int = MAX_VALUE) -> int:
    """Characters/items `value` holds or would print as, counted only up to past `limit`
    (so measuring a list of a thousand references to one large string is cheap)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        total = len(value)
        for key, item in value.items():
            total += _size(key, limit - total) + _size(item, limit - total)
            if total > limit:
                break
        return total
    if isinstance(value, (list, tuple, set, frozenset)):
        total = len(value)
        for item in value:
            total += _size(item, limit - total)
            if total > limit:
                break
        return total
    return 1


def _measured(value: Any) -> Any:
    """Charge `value`'s size to the budget; refuse it if it is larger than MAX_VALUE."""
    size = _size(value)
    if size > MAX_VALUE:
        raise RenderBudgetExceeded(f"the template builds a value larger than {MAX_VALUE:,} characters or items")
    _active_budget().charge(size)
    return value


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    budget = _active_budget()
    for item in items:
        budget.loop_items_left -= 1
        if budget.loop_items_left < 0:
            raise RenderBudgetExceeded(f"loops may run at most {MAX_LOOP_ITEMS:,} times per render")
        budget.charge(1)
        yield item


_JINJA_ARGUMENTS = (Environment, nodes.EvalContext, Context)
_DATA_TYPES = (str, Number, type(None), list, tuple, set, frozenset, Mapping, date, Undefined)


def _guarded_filter(function: Any) -> Any:
    @functools.wraps(function)  # keeps Jinja's pass_context/pass_eval_context marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        for argument in (*args, *kwargs.values()):
            if not isinstance(argument, _JINJA_ARGUMENTS):  # what pass_context & co. hand in
                _measured(argument)
        result = function(*args, **kwargs)
        if isinstance(result, Iterator):  # reverse, unique, items ... are lazy
            result = list(_counted(result))
        return _measured(result)

    return guarded


def _each(value: Any) -> Iterator[Any]:
    """What a `{% for %}` iterates: every item counted against the loop and work budgets."""
    _active_budget()
    return _counted(value)


@pass_eval_context
def _concat(eval_ctx: Any, items: list[Any]) -> str:
    """`a ~ b ~ c`, measured before it is joined."""
    _measured(items)
    return _measured(markup_join(items) if eval_ctx.autoescape else str_join(items))


def _emit(value: Any) -> Any:
    """A printed value: data only (never an object such as `self`), measured before
    Jinja turns it into text."""
    if not isinstance(value, _DATA_TYPES):
        raise SecurityError(f"the template printed a {type(value).__name__}, not data")
    return _measured(value)


class _BudgetedSandbox(SandboxedEnvironment):
    """Jinja's sandbox with the budget at every lookup and `+`; no globals at all."""

    intercepted_binops = frozenset({"+"})

    def __init__(self, autoescape: bool) -> None:
        # Chainable: a missing attribute, and any lookup below it, is empty (or `default`).
        super().__init__(autoescape=autoescape, keep_trailing_newline=True, undefined=ChainableUndefined)
        self.globals.clear()  # no range, dict, lipsum, cycler, joiner, namespace
        self.filters = {name: _guarded_filter(DEFAULT_FILTERS[name]) for name in FILTERS}
        self.filters.update(_each=_each, _concat=_concat, _emit=_emit)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _measured([left, right])
        return _measured(super().call_binop(context, operator, left, right))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _active_budget().charge(1)
        if isinstance(obj, Mapping):  # data: fields only, never the dict's methods
            return self.getitem(obj, attribute)
        value = super().getattr(obj, attribute)
        return self.undefined(obj=obj, name=attribute) if callable(value) else value

    def getitem(self, obj: Any, argument: Any) -> Any:
        _active_budget().charge(1)
        if isinstance(argument, str) and argument.startswith("_"):
            return self.undefined(obj=obj, name=argument)
        if isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=argument)
        value = super().getitem(obj, argument)
        return _measured(value) if isinstance(argument, slice) else value


@functools.lru_cache(maxsize=2)
def _environment(autoescape: bool) -> _BudgetedSandbox:
    return _BudgetedSandbox(autoescape)


def _budgeted(tree: nodes.Template) -> nodes.Template:
    """Route every loop, `~` and printed value of a checked tree through the budget."""
    for loop in tree.find_all(nodes.For):
        loop.iter = _call("_each", loop.iter)
    for output in tree.find_all(nodes.Output):
        output.nodes = [n if isinstance(n, nodes.TemplateData) else _call("_emit", n) for n in output.nodes]
    return _replace_concat(tree)


def _replace_concat(node: nodes.Node) -> Any:
    for field, value in node.iter_fields():
        if isinstance(value, nodes.Node):
            setattr(node, field, _replace_concat(value))
        elif isinstance(value, list):
            setattr(node, field, [_replace_concat(v) if isinstance(v, nodes.Node) else v for v in value])
    if isinstance(node, nodes.Concat):
        return _call("_concat", nodes.List(node.nodes, lineno=node.lineno))
    return node


def _call(filter_name: str, node: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, filter_name, [], [], None, None, lineno=node.lineno)


# --- compiling (cached) and rendering ---------------------------------------------------


@functools.lru_cache(maxsize=1024)
def compiled(source: str, html: bool = False) -> Template:
    """The checked, budgeted, compiled template for `source` (cached by source).

    Raises SecurityError if `source` leaves the allowed language (a template saved
    before a rule was added is refused when it runs, not rendered).
    """
    try:
        tree = _checked_tree(source)
    except (TemplateRefused, TemplateSyntaxError, RecursionError) as exc:
        raise SecurityError(f"the template is not allowed: {exc}") from exc
    return _environment(html).from_string(_budgeted(tree))


def _render(source: str, context: dict[str, Any], *, html: bool) -> str:
    template = compiled(source, html)
    token = _budget.set(_Budget(deadline=time.monotonic() + RENDER_SECONDS))
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderBudgetExceeded(f"rendered text is longer than {MAX_OUTPUT:,} characters")
            parts.append(chunk)
    except SecurityError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other template failure, reported without values
        raise RenderFailed(f"{_kind(exc)} on line {_template_line(exc)}") from None
    finally:
        _budget.reset(token)
    return "".join(parts)


def _kind(exc: Exception) -> str:
    if isinstance(exc, UndefinedError):
        return "the template uses a value the contact does not have"
    return f"the template failed ({type(exc).__name__})"


def _template_line(exc: BaseException) -> str:
    """The template line the error happened on (Jinja rewrites tracebacks to name it)."""
    line, tb = "?", exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line


def render_text(source: str, context: dict[str, Any]) -> str:
    return _render(source, context, html=False)


def render_html(source: str, context: dict[str, Any]) -> str:
    """Autoescaped: a contact named <script> stays text. Newlines become <br>."""
    return _render(source, context, html=True).replace("\n", "<br>\n")
