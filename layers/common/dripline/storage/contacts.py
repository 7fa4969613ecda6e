"""Contacts: the records whose stream drives enrollment."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist

from dripline.domain import ContactView
from dripline.errors import NotFound
from dripline.storage.models import Contact
from dripline.storage.util import delete_record, modify_record, plain


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


def create_contact(contact: Contact) -> Contact:
    """Write a new contact (its stream INSERT enrolls it)."""
    contact.save(condition=Contact.contact_id.does_not_exist())
    return contact


def modify_contact(
    team_id: str, contact_id: str, change: Callable[[Contact], dict[str, Any]], now: datetime, *, attempts: int = 5
) -> Contact:
    """Apply `change(current) -> {field: new value}` as one conditional update
    (dripline.storage.util.modify_record). Raises NotFound for an unknown contact."""
    return modify_record(lambda: get_contact(team_id, contact_id), change, now, what=f"contact {contact_id}", attempts=attempts)


def delete_contact(team_id: str, contact_id: str) -> Contact:
    """Delete a contact (its stream REMOVE cancels its runs); NotFound if unknown."""
    return delete_record(get_contact(team_id, contact_id), f"contact {contact_id}")


def list_contacts(team_id: str, *, limit: int = 50, start_key: dict | None = None) -> tuple[list[Contact], dict | None]:
    """A page of the team's contacts and the key to continue from (None at the end)."""
    result = Contact.query(team_id, limit=limit, last_evaluated_key=start_key)
    items = list(result)
    return items, result.last_evaluated_key
