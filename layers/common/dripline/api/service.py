"""What the routes do: plain operations over storage, the engine and enrollment.

Each takes the caller's team (from the verified token) and returns domain values, or
raises a domain exception that `dripline.api.errors` turns into a status code. Every
check runs before the first write, so a rejected request changes nothing.
"""
from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from dripline import actions, enrollment, records, simulation, templating
from dripline.actions import ActionContext, ActionError
from dripline.actions import email as email_action
from dripline.api.schemas import (
    ContactIn, ContactPatch, DealIn, DealPatch, PipelineIn, SampleContact, SimulateIn, SuppressionIn, TestSendIn, TryIn,
)
from dripline.domain import ACTIVE_STATUSES, ContactView, PipelineSpec, Step
from dripline.email_tags import tag_value
from dripline.errors import AddressTaken, Conflict, NotFound, ValidationFailed
from dripline.exits import ExitCondition
from dripline.observability import logger
from dripline.settings import Settings
from dripline.storage import contacts, deals, messages, pipelines, runs, stats, suppressions
from dripline.storage.models import Contact, Deal, MessageRecord, PipelineRun, Suppression
from dripline.wait_until import WaitUntil
from dripline.windows import SendWindow

CONTACT = records.CONTACT.name
DEAL = records.DEAL.name
# Data fields of a step that are templates (the message always is).
TEMPLATED_DATA = ("subject", "title")
# A pipeline version is one DynamoDB item (at most 400 KB); keep clear of the limit.
MAX_STEPS_BYTES = 350_000


# --- pipelines ---------------------------------------------------------------------------------


def validate_steps(body: PipelineIn) -> list[Step]:
    """The rules pydantic cannot check alone: unique numbers, the registry, templates, size."""
    seen: set[int] = set()
    steps: list[Step] = []
    registered = actions.names()
    for index, raw in enumerate(body.steps):
        where = f"steps[{index}]"
        if raw.step_number in seen:
            raise ValidationFailed(f"{where}.step_number", f"duplicate step_number {raw.step_number}")
        seen.add(raw.step_number)
        action = actions.get(raw.action_type)
        if action is None:
            raise ValidationFailed(f"{where}.action_type", f"unknown action; one of {', '.join(registered)}")
        try:
            step = Step(
                raw.step_number,
                raw.action_type,
                raw.delay_seconds,
                raw.message,
                dict(raw.data),
                send_window=SendWindow.parse(raw.send_window) if raw.send_window is not None else None,
                wait_until=WaitUntil.parse(raw.wait_until) if raw.wait_until is not None else None,
            )
        except ValidationFailed as exc:
            raise ValidationFailed(f"{where}.{exc.field}", exc.message) from exc
        if step.wait_until is not None and step.delay_seconds:
            raise ValidationFailed(f"{where}.delay_seconds", "must be 0 with wait_until (the wait replaces the delay)")
        try:
            _checked(lambda: templating.check(step.message, "message"), "message")
            _checked(lambda: action.validate(step), "data")
            _check_for_model_type(body.model_type, step)
        except ValidationFailed as exc:
            raise ValidationFailed(f"{where}.{exc.field}", exc.message) from exc
        steps.append(step)
    size = len(json.dumps([s.to_dict() for s in steps]).encode())
    if size > MAX_STEPS_BYTES:
        raise ValidationFailed("steps", f"too large once stored ({size} bytes; at most {MAX_STEPS_BYTES})")
    return steps


def _check_for_model_type(model_type: str, step: Step) -> None:
    """What depends on the record type: whom an email goes to (`data.to`), and the names
    the templates may use (`deal` on a deal pipeline, `contact` only where each email goes
    to a contact): a template naming another type's record could never render."""
    kind = records.get(model_type)
    target = None
    if step.action_type == "send_email":
        target = kind.target(step.data.get("to"))
        if target is None:
            choices = " or ".join(f"`{t.name}`" for t in kind.email_targets)
            raise ValidationFailed("data.to", f"a {model_type} pipeline's email goes to {choices}")
    allowed = records.template_names(model_type, target)
    sources = [("message", step.message)] + [(f"data.{k}", step.data[k]) for k in TEMPLATED_DATA if isinstance(step.data.get(k), str)]
    for field, source in sources:
        _checked(lambda: templating.check(source, field, names=allowed), field)


def _checked(check: Callable[[], None], field: str) -> None:
    """Run a save-time check; a template too deep or too large to even check is refused too.

    Jinja parses and compiles recursively: 300 nested parentheses or 2,000 `+` terms
    exhaust the stack (RecursionError) before any rule of the template language is seen.
    """
    try:
        check()
    except (RecursionError, MemoryError):
        raise ValidationFailed(field, "template nests too deeply or is too large to check") from None


def validate_exit_when(body: PipelineIn) -> ExitCondition | None:
    """The pipeline's exit condition, checked against its model type's fields (422 naming the field)."""
    return ExitCondition.parse(body.exit_when, body.model_type) if body.exit_when is not None else None


def create_pipeline(team_id: str, body: PipelineIn, now: datetime) -> pipelines.Pipeline:
    steps, exit_when = validate_steps(body), validate_exit_when(body)
    return pipelines.create_pipeline(
        team_id,
        name=body.name,
        model_type=body.model_type,
        steps=steps,
        now=now,
        automatic=bool(body.automatic),
        exit_when=exit_when,
    )


def update_pipeline(team_id: str, pipeline_id: str, body: PipelineIn, now: datetime) -> pipelines.Pipeline:
    current = pipelines.get_pipeline(team_id, pipeline_id)  # 404 before 422: the id is checked first
    if body.model_type != current.spec.model_type:
        # Its runs, automatic setting and templates all belong to one record type.
        raise ValidationFailed("model_type", f"a pipeline keeps its model_type ({current.spec.model_type}); create a new one")
    steps, exit_when = validate_steps(body), validate_exit_when(body)
    if current.status != "active":
        raise Conflict(f"pipeline {pipeline_id} is archived")
    return pipelines.update_pipeline(
        team_id,
        pipeline_id,
        name=body.name,
        model_type=body.model_type,
        steps=steps,
        now=now,
        automatic=body.automatic,
        exit_when=exit_when,
    )


def archive_pipeline(team_id: str, pipeline_id: str, now: datetime, *, cancel_runs: bool) -> int:
    """Archive; with cancel_runs, cancel its active runs too. Returns how many were cancelled."""
    pipelines.archive_pipeline(team_id, pipeline_id, now)
    if not cancel_runs:
        return 0
    with stats.Tally() as tally:  # one counter write for all the cancellations
        return sum(
            runs.cancel_run(run, now, "pipeline_archived", tally)
            for run in runs.all_runs_of_pipeline(team_id, pipeline_id)
            if run.status in ACTIVE_STATUSES
        )


def set_automatic(team_id: str, pipeline_id: str, now: datetime):
    pipeline = pipelines.get_pipeline(team_id, pipeline_id)
    return pipelines.set_automatic(team_id, pipeline_id, pipeline.spec.model_type, now)


def unset_automatic(team_id: str, pipeline_id: str) -> None:
    pipelines.get_pipeline(team_id, pipeline_id)  # unknown (or another team's) id: 404
    pipelines.unset_automatic(team_id, pipeline_id)


def pipeline_stats(team_id: str, pipeline_id: str) -> dict[str, Any]:
    pipeline = pipelines.get_pipeline(team_id, pipeline_id)
    return stats.read(team_id, pipeline_id, [(s.step_number, s.action_type) for s in pipeline.spec.steps])


def compare_pipelines(team_id: str, *, limit: int, start_key: dict | None) -> tuple[list[dict[str, Any]], dict | None]:
    """A page of the team's pipelines side by side: each one's counters (one BatchGetItem
    for the page), never its runs."""
    page, key = pipelines.list_pipelines(team_id, limit=limit, start_key=start_key)
    items = stats.read_many(team_id, [p.pipeline_id for p in page])
    rows = []
    for pipeline in page:
        steps = [(s.step_number, s.action_type) for s in pipeline.spec.steps]
        rows.append({"pipeline_id": pipeline.pipeline_id, "name": pipeline.spec.name, "status": pipeline.status,
                     **stats.comparison(items.get(pipeline.pipeline_id, {}), steps)})
    return rows, key


ERRORS_DEFAULT_SECONDS = 24 * 3600


def error_patterns(team_id: str, since: str | None, now: datetime) -> tuple[datetime, list[dict[str, Any]]]:
    """The team's failed, retried and recovered steps since `since` (ISO 8601; default: a
    day ago), from the start of that hour. Returns (that hour, the patterns)."""
    if since is None:
        start = now - timedelta(seconds=ERRORS_DEFAULT_SECONDS)
    else:
        try:
            start = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationFailed("since", "an ISO 8601 time is required, e.g. 2026-03-02T09:00:00Z") from None
        if start.tzinfo is None:
            raise ValidationFailed("since", "needs a time zone (Z or an offset)")
    hour = stats.hour_of(start)
    return hour, stats.read_errors(team_id, hour)


def reconcile_stats(team_id: str, pipeline_id: str) -> dict[str, Any]:
    """Recount the pipeline's counters from its runs, then answer its stats."""
    pipelines.get_pipeline(team_id, pipeline_id)  # unknown (or another team's) id: 404
    stats.reconcile(team_id, pipeline_id)
    return pipeline_stats(team_id, pipeline_id)


# --- trying a pipeline: preview, simulate, test send ------------------------------------------
#
# All three render with the actions' own functions (`preview` / `compose`, which `execute`
# calls too) and plan with the engine (dripline.simulation): what they show is what the
# processor does. None writes anything; only the test send calls AWS (one SendEmail).

SAMPLE_CONTACT_ID = "sample"
TEST_PREFIX = "[TEST] "


def sample_link(settings: Settings) -> str:
    """An unsubscribe link that unsubscribes nobody (the token is not sealed: it answers 404)."""
    return f"{settings.public_api_url}/unsubscribe/{SAMPLE_CONTACT_ID}"


def _subject(team_id: str, body: TryIn, settings: Settings) -> tuple[ContactView, str | None]:
    """The contact to render for, and its unsubscribe link (None: the contact's own signed one)."""
    if (body.contact_id is None) == (body.contact is None):
        raise ValidationFailed("contact_id", "give exactly one of contact_id and contact")
    # Marked as the processor marks it: an address on the suppression list is never emailed.
    if body.contact_id is not None:
        contact = contacts.get_contact(team_id, body.contact_id)
        return contacts.view(contact, suppressed=_is_suppressed(team_id, contact.email)), None
    sample = sample_contact(team_id, body.contact)
    return dataclasses.replace(sample, suppressed=_is_suppressed(team_id, sample.email)), sample_link(settings)


def _is_suppressed(team_id: str, email: str) -> bool:
    return suppressions.find(team_id, email) is not None


def sample_contact(team_id: str, sample: SampleContact) -> ContactView:
    return ContactView(
        team_id=team_id, contact_id=SAMPLE_CONTACT_ID, email=sample.email, first_name=sample.first_name,
        last_name=sample.last_name, timezone=sample.timezone, attributes=dict(sample.attributes),
        unsubscribed=sample.unsubscribed,
    )


def _contact_pipeline(team_id: str, pipeline_id: str, what: str) -> PipelineSpec:
    """The pipeline's latest version; 422 unless it runs on contacts: preview, simulation and
    test send render for a contact (or a sample one), not yet for a deal (docs/API.md)."""
    spec = pipelines.get_pipeline(team_id, pipeline_id).spec
    if spec.model_type != records.CONTACT.name:
        raise ValidationFailed("model_type", f"{what} supports contact pipelines only; this is a {spec.model_type} pipeline")
    return spec


def preview(team_id: str, pipeline_id: str, body: TryIn, now: datetime, settings: Settings) -> tuple[PipelineSpec, list]:
    """Every step of the pipeline's latest version as this contact would get it if enrolled now."""
    spec = _contact_pipeline(team_id, pipeline_id, "preview")
    contact, link = _subject(team_id, body, settings)
    return spec, simulation.preview(spec, contact, now, settings, unsubscribe_url=link)


def simulate(team_id: str, pipeline_id: str, body: SimulateIn, now: datetime, settings: Settings):
    """The whole timeline of a run enrolled now, with the injected failures, on a virtual clock."""
    spec = _contact_pipeline(team_id, pipeline_id, "simulation")
    for index, failure in enumerate(body.failures):
        if spec.step(failure.step_number) is None:
            raise ValidationFailed(f"failures[{index}].step_number", f"the pipeline has no step {failure.step_number}")
    contact, link = _subject(team_id, body, settings)
    failures = [simulation.Failure(f.step_number, f.times, f.retryable) for f in body.failures]
    return spec, simulation.simulate(spec, contact, now, settings, failures, unsubscribe_url=link)


def test_send(
    team_id: str, pipeline_id: str, step_number: int, body: TestSendIn, allowed: str | None, now: datetime,
    settings: Settings, sesv2: Any,
) -> tuple[dict[str, Any], str]:
    """Send one email step to the caller's own address, `[TEST]` in its subject.

    `allowed` is the caller's verified address (the token's `email`): the only address a
    test may go to, so a test send can never reach a contact or a stranger. The email is
    rendered as the processor renders it, for `contact_id` or a sample contact, but its
    unsubscribe link is the inert sample one (a team member clicking it must not
    unsubscribe the contact), it carries no `run` tag (SES's events for it count in no
    stats) and no run is created. Returns SES's answer and the subject sent.
    """
    spec = _contact_pipeline(team_id, pipeline_id, "test send")
    step = spec.step(step_number)
    if step is None:
        raise NotFound(f"pipeline {pipeline_id} has no step {step_number}")
    if step.action_type != email_action.SendEmail.name:
        raise ValidationFailed("step_number", f"step {step_number} is a {step.action_type} step; only send_email steps can be test-sent")
    if allowed is None or body.to.lower() != allowed.lower():
        raise ValidationFailed("to", "a test goes only to your own verified address (the token's email claim)")
    if _is_suppressed(team_id, body.to):
        raise ValidationFailed("to", "the address is on the team's suppression list (`DELETE /suppressions?email=` to email it again)")
    if body.contact_id is not None and body.contact is not None:
        raise ValidationFailed("contact_id", "give at most one of contact_id and contact")
    if body.contact_id is not None:
        contact = contacts.view(contacts.get_contact(team_id, body.contact_id))
    else:
        contact = sample_contact(team_id, body.contact or SampleContact(email=body.to))
    link = sample_link(settings)
    ctx = ActionContext(
        run=simulation.placeholder_run(spec, contact, step_number, now, 0), pipeline=spec, step=step, contact=contact,
        settings=settings, now=now, clients=None, unsubscribe_url=link,
    )
    try:
        content = email_action.compose(ctx, link)
        subject = email_action.subject_line(TEST_PREFIX + content.subject)
    except (ActionError, templating.RenderFailed) as exc:
        raise ValidationFailed("message", f"does not render for this contact: {exc}") from None
    raw = email_action.mime_message(
        dataclasses.replace(content, subject=subject), sender=settings.email_from, to=body.to, link=link, now=now
    )
    answer = email_action.send(sesv2, settings, to=body.to, raw=raw, tags=[{"Name": "team", "Value": tag_value(team_id)}, {"Name": "test", "Value": "true"}])
    return answer, subject


# --- contacts ----------------------------------------------------------------------------------


def _check_active_pipelines(team_id: str, pipeline_ids: list[str], field: str) -> None:
    for pipeline_id in pipeline_ids:
        spec = pipelines.active_pipeline(team_id, pipeline_id)
        if spec is None or spec.model_type != CONTACT:
            raise ValidationFailed(field, f"{pipeline_id} is not an active pipeline of this team")


def create_contact(team_id: str, body: ContactIn, now: datetime) -> Contact:
    """Write the contact; its stream INSERT enrolls it (automatic + manual pipelines).
    AddressTaken (409) if a contact of the team has this address, in any case."""
    _check_active_pipelines(team_id, body.pipeline_ids, "pipeline_ids")
    return contacts.create_contact(
        Contact(
            team_id,
            uuid.uuid4().hex,
            email=body.email,
            first_name=body.first_name,
            last_name=body.last_name,
            timezone=body.timezone,
            attributes=body.attributes,
            pipeline_ids=body.pipeline_ids,
            unsubscribed=body.unsubscribed,
            created_at=now,
            updated_at=now,
        )
    )


def upsert_contact(team_id: str, body: ContactIn, now: datetime) -> tuple[Contact, bool]:
    """Create the contact, or change the one holding its address (in any case) with the
    fields the body gives: `(contact, created)`. For clients that sync from a CRM."""
    existing = contacts.find_by_email(team_id, body.email)
    if existing is None:
        try:
            return create_contact(team_id, body, now), True
        except AddressTaken as taken:  # created concurrently: change that one
            existing = contacts.get_contact(team_id, taken.contact_id)
    given = body.model_dump(include=body.model_fields_set - {"email"})
    return patch_contact(team_id, existing.contact_id, ContactPatch(**given), now), False


def find_contact_by_email(team_id: str, email: str) -> list[Contact]:
    found = contacts.find_by_email(team_id, email)
    return [found] if found is not None else []


def patch_contact(team_id: str, contact_id: str, body: ContactPatch, now: datetime) -> Contact:
    """Any subset of the fields; the stream MODIFY adds and cancels runs accordingly."""
    contacts.get_contact(team_id, contact_id)  # 404 before 422
    changes = body.model_dump(include=body.model_fields_set)
    if "pipeline_ids" in changes:
        current = set(contacts.get_contact(team_id, contact_id).pipeline_ids or [])
        # Ids already assigned may stay even if archived since; new ones must be active.
        _check_active_pipelines(team_id, [p for p in changes["pipeline_ids"] if p not in current], "pipeline_ids")
    if not changes:
        return contacts.get_contact(team_id, contact_id)
    if "email" in changes:
        return _change_address(team_id, contact_id, changes, now)
    return contacts.modify_contact(team_id, contact_id, lambda current: _with_generation(current, changes), now)


def _change_address(team_id: str, contact_id: str, changes: dict[str, Any], now: datetime) -> Contact:
    """Claim the new address first (409 if another contact holds it), write the contact,
    then free the old one. A crash between leaves a claim that will be taken over."""
    before = contacts.get_contact(team_id, contact_id)
    moved = contacts.normalised(before.email) != contacts.normalised(changes["email"])
    if moved:
        contacts.claim_address(team_id, changes["email"], contact_id, now)
    try:
        updated = contacts.modify_contact(team_id, contact_id, lambda current: _with_generation(current, changes), now)
    except Exception:
        if moved:
            contacts.release_address(team_id, changes["email"], contact_id)
        raise
    if moved:
        contacts.release_address(team_id, before.email, contact_id)
    return updated


def _with_generation(current: Contact, changes: dict[str, Any]) -> dict[str, Any]:
    """Re-subscribing moves the subscription generation on: older unsubscribe links stop working."""
    if current.unsubscribed and changes.get("unsubscribed") is False:
        return {**changes, "subscription_generation": int(current.subscription_generation or 0) + 1}
    return changes


def delete_contact(team_id: str, contact_id: str) -> None:
    contacts.delete_contact(team_id, contact_id)


def contact_messages(team_id: str, contact_id: str, *, limit: int, start_key: dict | None) -> tuple[list[MessageRecord], dict | None]:
    """A page of the contact's delivery log, newest first (404 for an unknown contact)."""
    contacts.get_contact(team_id, contact_id)
    return messages.list_for_contact(team_id, contact_id, limit=limit, start_key=start_key)


def contact_runs(team_id: str, contact_id: str) -> list[PipelineRun]:
    contacts.get_contact(team_id, contact_id)
    return sorted(runs.runs_of(team_id, CONTACT, contact_id), key=lambda r: (r.created_at, r.run_id))


def assign(team_id: str, contact_id: str, pipeline_id: str, now: datetime, settings: Settings) -> PipelineRun:
    """Manual assignment, answered with the new run.

    Checked first, so a refusal writes nothing: the contact exists and is subscribed,
    the pipeline is active, and no run of it is active for the contact (409). Then the
    contact is updated (pipeline added to its manual set, updated_at bumped) and the run
    is created under the enrollment key of that write: the stream's MODIFY, arriving
    later with the same key, finds the run and creates nothing.
    """
    contact = contacts.get_contact(team_id, contact_id)
    if contact.unsubscribed:
        raise Conflict(f"contact {contact_id} is unsubscribed")
    _check_active_pipelines(team_id, [pipeline_id], "pipeline_id")
    if any(r.pipeline_id == pipeline_id and r.status in ACTIVE_STATUSES for r in runs.runs_of(team_id, CONTACT, contact_id)):
        raise Conflict(f"contact already has an active run of pipeline {pipeline_id}")

    def add(current: Contact) -> dict[str, Any]:
        ids = list(current.pipeline_ids or [])
        return {"pipeline_ids": ids if pipeline_id in ids else ids + [pipeline_id]}

    updated = contacts.modify_contact(team_id, contact_id, add, now)
    return enrollment.assign(updated, pipeline_id, settings)


def unassign(team_id: str, contact_id: str, run_id: str, now: datetime) -> None:
    """Cancel one run of the contact and drop its pipeline from the manual set.

    Dropping it keeps `pipeline_ids` truthful; the resulting stream MODIFY finds the run
    already cancelled. Enrollment keys make sure no redelivered record re-creates it.
    """
    contacts.get_contact(team_id, contact_id)
    run = runs.get_run(team_id, run_id)
    if run.pipelineable_type != CONTACT or run.pipelineable_id != contact_id:
        raise NotFound(f"run {run_id} not found")
    runs.cancel_run(run, now, "removed_by_user")

    def drop(current: Contact) -> dict[str, Any]:
        return {"pipeline_ids": [p for p in (current.pipeline_ids or []) if p != run.pipeline_id]}

    if run.pipeline_id in (contacts.get_contact(team_id, contact_id).pipeline_ids or []):
        contacts.modify_contact(team_id, contact_id, drop, now)


# --- deals -------------------------------------------------------------------------------------


def _check_contacts(team_id: str, contact_ids: list[str], field: str) -> None:
    """Every id names a contact of the team (one batch read)."""
    found = contacts.find_contacts(team_id, contact_ids)
    missing = [c for c in contact_ids if c not in found]
    if missing:
        raise ValidationFailed(field, f"{missing[0]} is not a contact of this team")


def create_deal(team_id: str, body: DealIn, now: datetime) -> Deal:
    """Write the deal; its stream INSERT enrolls it in the team's automatic deal pipelines."""
    _check_contacts(team_id, body.contact_ids, "contact_ids")
    return deals.create_deal(
        Deal(
            team_id,
            uuid.uuid4().hex,
            name=body.name,
            value=body.value,
            stage=body.stage,
            owner_email=body.owner_email,
            contact_ids=body.contact_ids,
            attributes=body.attributes,
            created_at=now,
            updated_at=now,
        )
    )


def patch_deal(team_id: str, deal_id: str, body: DealPatch, now: datetime) -> Deal:
    current = deals.get_deal(team_id, deal_id)  # 404 before 422
    changes = body.model_dump(include=body.model_fields_set)
    if "contact_ids" in changes:
        _check_contacts(team_id, [c for c in changes["contact_ids"] if c not in set(current.contact_ids or [])], "contact_ids")
    if not changes:
        return current
    return deals.modify_deal(team_id, deal_id, lambda _current: changes, now)


def delete_deal(team_id: str, deal_id: str) -> None:
    deals.delete_deal(team_id, deal_id)


def deal_runs(team_id: str, deal_id: str) -> list[PipelineRun]:
    deals.get_deal(team_id, deal_id)
    return sorted(runs.runs_of(team_id, DEAL, deal_id), key=lambda r: (r.created_at, r.run_id))


# --- suppressions ------------------------------------------------------------------------------


def add_suppression(team_id: str, body: SuppressionIn, now: datetime) -> tuple[Suppression, bool]:
    holder = contacts.find_by_email(team_id, body.email)
    return suppressions.suppress(team_id, body.email, body.reason, now, holder.contact_id if holder else None)


def remove_suppression(team_id: str, email: str) -> None:
    """An explicit act, logged (without the address): email to it is allowed again."""
    entry = suppressions.remove(team_id, email)
    if entry is None:
        raise NotFound("email: not on the suppression list")
    logger.info(
        "suppression removed",
        extra={"team_id": team_id, "reason": entry.reason, "contact_id": entry.contact_id, "suppressed_at": entry.created_at.isoformat()},
    )
