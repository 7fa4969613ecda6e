"""Step actions behind a small registry: the extension point for custom actions.

An action is an object with a `name`, an `idempotent` flag and two methods:

    validate(step)   raise ValidationFailed for a step that can never run (API time)
    execute(ctx)     do the work and return an ActionResult; raise ActionError (or let
                     a botocore error escape) for failures, the processor classifies them

A custom action is registered with `register(MyAction())` from a module named in the
ACTION_MODULES environment variable (comma-separated), imported at cold start by
`load_custom_actions`. `idempotent = True` promises that executing the same
(run, step) twice has the effect of once; only then may a reclaimed step run again
under the at-most-once delivery policy.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from dripline import records
from dripline.domain import ClaimedRun, ContactView, PipelineSpec, Step
from dripline.records import EmailRecipient, Record
from dripline.engine import ActionResult
from dripline.settings import Settings


class ActionError(Exception):
    """A failure an action understands; `retryable` says whether to try again later."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class ActionContext:
    run: ClaimedRun
    pipeline: PipelineSpec
    step: Step
    contact: ContactView | None  # the run's contact; None when the run is of another record type
    settings: Settings
    now: datetime
    clients: Any  # dripline.processor.Clients: lazily created AWS clients (None in a preview)
    # The run's record, whatever its type (dripline.records); derived from `contact` when not given.
    record: Record | None = None
    # An inert link instead of the contact's signed one: previews and test sends of a
    # sample contact (there is no contact to unsubscribe).
    unsubscribe_url: str | None = None

    def __post_init__(self) -> None:
        if self.record is None and self.contact is not None:
            object.__setattr__(self, "record", records.contact_record(self.contact))

    def template_context(self, recipient: EmailRecipient | None = None, unsubscribe_url: str | None = None) -> dict[str, Any]:
        """What the step's templates render with (dripline.records.template_context; names
        and fields: dripline.domain.TEMPLATE_FIELDS)."""
        return records.template_context(self.record, self.pipeline.name, recipient, unsubscribe_url)


class Action(Protocol):
    name: str
    idempotent: bool

    def validate(self, step: Step) -> None: ...

    def execute(self, ctx: ActionContext) -> ActionResult: ...


class Previewable(Protocol):
    """An action that can also say what it would do, without doing it (dripline.simulation: preview, simulate).

    `preview(ctx)` renders what `execute(ctx)` would send or create, with the same
    functions, and touches nothing: no AWS call, no write. It raises what `execute` would
    raise for this contact (a template that fails, an email that renders empty); it
    returns an ActionResult instead when execute would not act at all (unsubscribed).
    """

    def preview(self, ctx: ActionContext) -> dict[str, Any] | ActionResult: ...


_registry: dict[str, Action] = {}


def register(action: Action) -> Action:
    _registry[action.name] = action
    return action


def get(name: str) -> Action | None:
    return _registry.get(name)


def names() -> list[str]:
    return sorted(_registry)


def load_custom_actions(module_names: str) -> None:
    """Import the modules that register custom actions (ACTION_MODULES)."""
    for name in filter(None, (m.strip() for m in module_names.split(","))):
        importlib.import_module(name)


# The built-in actions register themselves; imported last because they use the names above.
from dripline.actions import email, tasks, webhook  # noqa: E402, F401
