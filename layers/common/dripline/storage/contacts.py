"""Contacts: the records whose stream drives enrollment."""
from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist

from dripline.domain import ContactView
from dripline.errors import NotFound
from dripline.storage.models import Contact


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
        attributes=contact.attributes.as_dict() if hasattr(contact.attributes, "as_dict") else dict(contact.attributes or {}),
        unsubscribed=bool(contact.unsubscribed),
    )
