"""Contacts: the records whose stream drives enrollment."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError

from dripline import observability
from dripline.domain import ContactView
from dripline.errors import AddressTaken, Conflict, NotFound
from dripline.storage.models import AddressClaim, Contact
from dripline.storage.util import delete_record, is_condition_failure, modify_record, plain

# A claim whose contact is missing is taken over only once it is this old: younger, its
# contact may still be on its way (claim written, contact write in flight).
CLAIM_GRACE = timedelta(seconds=30)


def normalised(email: str) -> str:
    """The address as matched: trimmed and lowercased, local part included.

    RFC 5321 lets a server treat the local part case-sensitively, but no mailbox
    provider in use does, and ESPs (SES's own suppression list among them) match
    addresses case-insensitively; `Ada@X.com` and `ada@x.com` are one person. The
    contact keeps the address as typed (trimmed) for display and sending.
    """
    return email.strip().lower()


def claim_sk(email: str) -> str:
    return f"EMAIL#{normalised(email)}"


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


def view(contact: Contact, *, suppressed: bool = False) -> ContactView:
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
        suppressed=suppressed,
    )


# --- writes and listings for the API ------------------------------------------------------------


def find_by_email(team_id: str, email: str) -> Contact | None:
    """The team's contact holding `email` (any case), or None."""
    try:
        claim = AddressClaim.get(team_id, claim_sk(email), consistent_read=True)
    except DoesNotExist:
        return None
    contact = find_contact(team_id, claim.contact_id)
    # A stale claim (crash between the writes) names a missing contact or another address.
    return contact if contact is not None and normalised(contact.email) == normalised(email) else None


def claim_address(team_id: str, email: str, contact_id: str, now: datetime) -> None:
    """Make `contact_id` the holder of `email` in the team: one conditional PutItem.

    Raises AddressTaken (naming the holder) when another existing contact holds it. A
    claim left behind by a crash (its contact missing, or carrying another address now)
    is taken over once older than CLAIM_GRACE, conditioned on being unchanged since read.
    """
    claim = AddressClaim(team_id, claim_sk(email), contact_id=contact_id, claimed_at=now)
    try:
        claim.save(condition=AddressClaim.sk.does_not_exist())
        return
    except PutError as exc:
        if not is_condition_failure(exc):
            raise
    try:
        held = AddressClaim.get(team_id, claim_sk(email), consistent_read=True)
    except DoesNotExist:  # released meanwhile
        return claim_address(team_id, email, contact_id, now)
    if held.contact_id == contact_id:
        return
    holder = find_contact(team_id, held.contact_id)
    if holder is not None and normalised(holder.email) == normalised(email):
        raise AddressTaken(f"email: a contact with this address exists ({held.contact_id})", held.contact_id)
    if now - held.claimed_at < CLAIM_GRACE:
        raise Conflict("email: a contact with this address is being written; retry")
    try:
        claim.save(condition=AddressClaim.contact_id == held.contact_id)
    except PutError as exc:
        if is_condition_failure(exc):
            raise Conflict("email: a contact with this address is being written; retry") from exc
        raise


def release_address(team_id: str, email: str, contact_id: str) -> None:
    """Drop `contact_id`'s claim on `email` (if it still holds it)."""
    try:
        AddressClaim(team_id, claim_sk(email)).delete(condition=AddressClaim.contact_id == contact_id)
    except DeleteError as exc:
        if not is_condition_failure(exc):
            raise


def create_contact(contact: Contact) -> Contact:
    """Claim the contact's address, then write the contact (its stream INSERT enrolls it).

    Raises AddressTaken if another contact of the team holds the address. Two
    single-item writes, no transaction: a crash between them leaves a claim naming a
    missing contact, which the next writer of that address takes over (claim_address).
    """
    contact.correlation_id = observability.correlation_id()  # the stream record's cause
    claim_address(contact.team_id, contact.email, contact.contact_id, contact.created_at)
    try:
        contact.save(condition=Contact.contact_id.does_not_exist())
    except Exception:
        release_address(contact.team_id, contact.email, contact.contact_id)
        raise
    return contact


def modify_contact(
    team_id: str, contact_id: str, change: Callable[[Contact], dict[str, Any]], now: datetime, *, attempts: int = 5
) -> Contact:
    """Apply `change(current) -> {field: new value}` as one conditional update
    (dripline.storage.util.modify_record). Raises NotFound for an unknown contact."""
    return modify_record(lambda: get_contact(team_id, contact_id), change, now, what=f"contact {contact_id}", attempts=attempts)


def delete_contact(team_id: str, contact_id: str) -> Contact:
    """Delete a contact (its stream REMOVE cancels its runs), then free its address;
    NotFound if unknown. A crash between the two leaves a claim that will be taken over."""
    contact = delete_record(get_contact(team_id, contact_id), f"contact {contact_id}")
    release_address(team_id, contact.email, contact_id)
    return contact


def list_contacts(team_id: str, *, limit: int = 50, start_key: dict | None = None) -> tuple[list[Contact], dict | None]:
    """A page of the team's contacts and the key to continue from (None at the end)."""
    result = Contact.query(team_id, limit=limit, last_evaluated_key=start_key)
    items = list(result)
    return items, result.last_evaluated_key
