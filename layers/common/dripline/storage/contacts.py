"""Contacts: the records whose stream drives enrollment."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, UpdateError

from dripline import observability
from dripline.domain import ContactView
from dripline.errors import Conflict, NotFound
from dripline.storage.models import Contact
from dripline.storage.util import is_condition_failure, plain


def get_contact(team_id: str, contact_id: str) -> Contact:
    try:
        return Contact.get(team_id, contact_id, consistent_read=True)
    except DoesNotExist as exc:
        raise NotFound(f"contact {contact_id} not found") from exc


def find_contact(team_id: str, contact_id: str) -> Contact | None:
    try:
        return get_contact(team_id, contact_id)
    except NotFound:
        return None


def find_contacts(team_id: str, contact_ids: list[str]) -> dict[str, Contact]:
    """The team's contacts among `contact_ids` that exist, by id: strongly consistent
    BatchGetItem, 100 keys a call (pynamodb asks again for UnprocessedKeys)."""
    keys = [(team_id, contact_id) for contact_id in dict.fromkeys(contact_ids)]
    if not keys:
        return {}
    return {c.contact_id: c for c in Contact.batch_get(keys, consistent_read=True)}


def contact_from_stream_image(image: dict[str, Any]) -> Contact:
    """A stream record's NewImage/OldImage (DynamoDB JSON) as a Contact.

    Raises ValueError for an image that is not a contact (a poison record).
    """
    contact = Contact.from_raw_data(image)
    for name in ("team_id", "contact_id", "email", "created_at", "updated_at"):
        if not getattr(contact, name, None):
            raise ValueError(f"contact image without {name}")
    return contact


def view(contact: Contact) -> ContactView:
    return ContactView(
        team_id=contact.team_id,
        contact_id=contact.contact_id,
        email=contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        timezone=contact.timezone,
        attributes=plain(contact.attributes) or {},
        unsubscribed=bool(contact.unsubscribed),
        subscription_generation=int(contact.subscription_generation or 0),
    )


# --- writes and listings for the API ------------------------------------------------------------


def next_stamp(previous: datetime | None, now: datetime) -> datetime:
    """The updated_at of a new write: now, but always after the previous write.

    A manual assignment's enrollment key is derived from updated_at, so two writes
    must never share one (a fast or frozen clock would otherwise let them).
    """
    if previous is not None and now <= previous:
        return previous + timedelta(milliseconds=1)
    return now


def create_contact(contact: Contact) -> Contact:
    """Write a new contact (its stream INSERT enrolls it)."""
    contact.correlation_id = observability.correlation_id()
    contact.save(condition=Contact.contact_id.does_not_exist())
    return contact


def modify_contact(
    team_id: str, contact_id: str, change: Callable[[Contact], dict[str, Any]], now: datetime, *, attempts: int = 5
) -> Contact:
    """Apply `change(current) -> {field: new value}` as one conditional update.

    The update is conditioned on the contact's updated_at as read, so a concurrent
    writer makes us read again and recompute rather than overwrite its change. A None
    value removes the attribute. updated_at is always bumped (see next_stamp).
    Raises NotFound for an unknown (or concurrently deleted) contact.
    """
    for _ in range(attempts):
        current = get_contact(team_id, contact_id)
        # The write's cause goes with it (the stream record's correlation id).
        changes = {**change(current), "correlation_id": observability.correlation_id()}
        actions = [
            getattr(Contact, name).remove() if value is None else getattr(Contact, name).set(value)
            for name, value in changes.items()
        ]
        actions.append(Contact.updated_at.set(next_stamp(current.updated_at, now)))
        try:
            current.update(actions=actions, condition=Contact.updated_at == current.updated_at)
        except UpdateError as exc:
            if not is_condition_failure(exc):
                raise
            continue  # changed or deleted since we read it: read again
        return current
    raise Conflict(f"contact {contact_id} is being changed concurrently; retry")


def delete_contact(team_id: str, contact_id: str) -> Contact:
    """Delete a contact (its stream REMOVE cancels its runs); NotFound if unknown."""
    contact = get_contact(team_id, contact_id)
    try:
        contact.delete(condition=Contact.contact_id.exists())
    except DeleteError as exc:
        if is_condition_failure(exc):
            raise NotFound(f"contact {contact_id} not found") from exc
        raise
    return contact


def list_contacts(team_id: str, *, limit: int = 50, start_key: dict | None = None) -> tuple[list[Contact], dict | None]:
    """A page of the team's contacts and the key to continue from (None at the end)."""
    result = Contact.query(team_id, limit=limit, last_evaluated_key=start_key)
    items = list(result)
    return items, result.last_evaluated_key
