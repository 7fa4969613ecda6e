"""The record types pipelines run on (`model_type`, a run's `pipelineable_type`): one registry.

Everything that differs between a contact and a deal lives here: how a record is read
(one, a batch, a stream image), what its templates may name, whom its email steps write
to. Enrollment, the processor, the actions and the API ask this module and hold no
type-specific code, so a third type is one entry here plus its table, storage module and
routes (README, "Model types").
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dripline.domain import TEMPLATE_FIELDS, ContactView, DealView
from dripline.storage import contacts, deals, suppressions
from dripline.storage.models import Contact, Deal, run_owner


@dataclass(frozen=True)
class Record:
    """One pipelineable, whatever its type, as enrollment, the processor and actions see it."""

    type: str
    team_id: str
    id: str
    # The template context of `{{ <type>.* }}`: the record's fields, `attributes` among them.
    fields: Mapping[str, Any]
    view: ContactView | DealView
    updated_at: datetime | None = None
    timezone: str | None = None  # plans send windows and wait-until wall times (None: UTC)
    # Manual pipeline assignments (contacts' `pipeline_ids`; none for deals).
    pipeline_ids: tuple[str, ...] = ()
    # No run may go on (an unsubscribed contact): its runs are cancelled, none are created.
    stopped: bool = False
    correlation_id: str | None = None  # the request that wrote this version (its log lines' cause)

    @property
    def owner(self) -> str:
        """Its runs' partition key (dripline.storage.models.run_owner)."""
        return run_owner(self.team_id, self.type, self.id)

    @property
    def attributes(self) -> Mapping[str, Any]:
        return self.fields.get("attributes") or {}

    def as_dict(self) -> dict[str, Any]:
        """Fields and attributes as plain values (what conditions on a record read)."""
        return {key: (dict(value) if isinstance(value, Mapping) else value) for key, value in self.fields.items()}


@dataclass(frozen=True)
class EmailRecipient:
    """One address an email step writes to. With a contact: the email carries that
    contact's unsubscribe link, is skipped once it unsubscribed, and its template sees
    `contact.*`; without one (a deal's owner, a user of the team) it has no link. Either
    is skipped while its address is on the team's suppression list."""

    address: str
    contact: ContactView | None = None
    suppressed: bool = False


@dataclass(frozen=True)
class EmailTarget:
    """A value of send_email's `data.to` for one record type."""

    name: str
    to_contacts: bool  # each recipient is a contact (its template may name `contact`, `unsubscribe_url`)
    recipients: Callable[[Record], list[EmailRecipient]]


@dataclass(frozen=True)
class RecordType:
    name: str  # model_type / pipelineable_type
    id_field: str  # its range key in its table, hence in its stream records' Keys
    # The top-level fields `{{ <name>.* }}` offers (the keys of `Record.fields`).
    template_fields: frozenset[str]
    # send_email's `data.to` values; the first is the default when `to` is absent (none: required).
    email_targets: tuple[EmailTarget, ...]
    default_target: str | None
    wrap: Callable[[Any], Record]  # a stored item (pynamodb model) as a Record
    find: Callable[[str, str], Any]  # team, id -> the stored item (GetItem), or None
    # team, ids -> the Records that exist, ready for a step (BatchGetItem; a contact also
    # carries whether its address is suppressed: one more BatchGetItem)
    load_many: Callable[[str, list[str]], dict[str, Record]]
    from_stream_image: Callable[[dict[str, Any]], Any]  # DynamoDB JSON -> a stored item; ValueError if not one

    def target(self, name: str | None) -> EmailTarget | None:
        wanted = name if name is not None else self.default_target
        return next((t for t in self.email_targets if t.name == wanted), None)


# --- contacts ------------------------------------------------------------------------------------


def _contact_record(contact: Contact, suppressed: bool = False) -> Record:
    record = contact_record(contacts.view(contact, suppressed=suppressed), contact.updated_at, tuple(contact.pipeline_ids or ()))
    return replace(record, correlation_id=contact.correlation_id)


def _load_contacts(team_id: str, contact_ids: list[str]) -> dict[str, Record]:
    """The contacts that exist, each marked if the team suppresses its address."""
    found = contacts.find_contacts(team_id, contact_ids)
    barred = suppressions.suppressed(team_id, [c.email for c in found.values()])
    return {k: _contact_record(c, contacts.normalised(c.email) in barred) for k, c in found.items()}


def contact_record(view: ContactView, updated_at: datetime | None = None, pipeline_ids: tuple[str, ...] = ()) -> Record:
    """A contact as a Record (also for a ContactView built without its item, e.g. a test send)."""
    return Record(
        type="contact",
        team_id=view.team_id,
        id=view.contact_id,
        fields=view.template_context(),
        view=view,
        updated_at=updated_at,
        timezone=view.timezone,
        pipeline_ids=pipeline_ids,
        stopped=view.unsubscribed,
    )


CONTACT = RecordType(
    name="contact",
    id_field="contact_id",
    template_fields=frozenset(TEMPLATE_FIELDS["contact"]),
    email_targets=(
        EmailTarget("contact", True, lambda record: [EmailRecipient(record.view.email, record.view, record.view.suppressed)]),
    ),
    default_target="contact",
    wrap=_contact_record,
    find=contacts.find_contact,
    load_many=_load_contacts,
    from_stream_image=contacts.contact_from_stream_image,
)


# --- deals ---------------------------------------------------------------------------------------


def _deal_record(deal: Deal) -> Record:
    view = deals.view(deal)
    return Record(type="deal", team_id=view.team_id, id=view.deal_id, fields=view.template_context(), view=view,
                  updated_at=deal.updated_at, correlation_id=deal.correlation_id)


def _deal_owner(record: Record) -> list[EmailRecipient]:
    """The owner, marked if the team suppresses the address (one read, at the step)."""
    owner = record.view.owner_email
    if not owner:
        return []
    return [EmailRecipient(owner, None, bool(suppressions.suppressed(record.team_id, [owner])))]


def _deal_contacts(record: Record) -> list[EmailRecipient]:
    """The deal's contacts that still exist, in the deal's order, each marked if suppressed
    (strongly consistent batch reads of the contacts, then of their suppressions)."""
    found = _load_contacts(record.team_id, list(record.view.contact_ids))
    people = [found[i].view for i in dict.fromkeys(record.view.contact_ids) if i in found]
    return [EmailRecipient(c.email, c, c.suppressed) for c in people]


DEAL = RecordType(
    name="deal",
    id_field="deal_id",
    template_fields=frozenset(TEMPLATE_FIELDS["deal"]),
    email_targets=(EmailTarget("owner", False, _deal_owner), EmailTarget("contacts", True, _deal_contacts)),
    default_target=None,
    wrap=_deal_record,
    find=deals.find_deal,
    load_many=lambda team_id, ids: {k: _deal_record(d) for k, d in deals.find_deals(team_id, ids).items()},
    from_stream_image=deals.deal_from_stream_image,
)


# --- the registry --------------------------------------------------------------------------------

TYPES: dict[str, RecordType] = {t.name: t for t in (CONTACT, DEAL)}
NAMES: tuple[str, ...] = tuple(TYPES)


def get(type_name: str) -> RecordType:
    try:
        return TYPES[type_name]
    except KeyError:
        raise LookupError(f"unknown record type {type_name!r}") from None


def load_many(team_id: str, type_name: str, ids: list[str]) -> dict[str, Record]:
    """The team's records of one type among `ids` that exist, by id (one batch read per 100)."""
    return get(type_name).load_many(team_id, ids)


def load(team_id: str, type_name: str, record_id: str) -> Record | None:
    """One record of any type by (type, id), strongly consistent; None if it does not exist."""
    kind = get(type_name)
    item = kind.find(team_id, record_id)
    return None if item is None else kind.wrap(item)


def type_of_keys(keys: Mapping[str, Any]) -> RecordType:
    """The type a stream record belongs to, from its Keys (each type's table has its own id key)."""
    for kind in TYPES.values():
        if kind.id_field in keys:
            return kind
    raise ValueError(f"a stream record of no known record type (keys {sorted(keys)})")


def from_stream_image(kind: RecordType, image: dict[str, Any]) -> Record:
    return kind.wrap(kind.from_stream_image(image))


def template_names(type_name: str, target: EmailTarget | None) -> frozenset[str]:
    """The names a step's templates may use on a pipeline of this type: the record, the
    pipeline and, when each email goes to a contact, `contact` and `unsubscribe_url`."""
    names = {type_name, "pipeline"}
    if target is not None and target.to_contacts:
        names |= {"contact", "unsubscribe_url"}
    return frozenset(names)


def template_context(record: Record, pipeline_name: str, recipient: EmailRecipient | None = None,
                     unsubscribe_url: str | None = None) -> dict[str, Any]:
    """What a step's templates render with: `<type>.*` and `pipeline.name`; an email to a
    contact adds that contact as `contact.*` and its `unsubscribe_url`."""
    context: dict[str, Any] = {record.type: dict(record.fields), "pipeline": {"name": pipeline_name}}
    if recipient is not None and recipient.contact is not None:
        context["contact"] = recipient.contact.template_context()
    if unsubscribe_url is not None:
        context["unsubscribe_url"] = unsubscribe_url
    return context

