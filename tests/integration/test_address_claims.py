"""The address claim under concurrency: one contact per (team, normalised address), kept
by single-item conditional writes (dripline.storage.contacts.claim_address), with many
writers at once. Threads call the storage layer directly (the API's resolver serves one
request at a time per process, as Lambda does per environment); moto's item operations
are atomic here, as DynamoDB's are (tests/conftest.py)."""
from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from dripline import clock
from dripline.errors import AddressTaken, Conflict
from dripline.storage import contacts
from dripline.storage.models import AddressClaim, Contact

TEAM = "acme"
WRITERS = 16


def new_contact(email: str, contact_id: str | None = None) -> Contact:
    now = clock.now()
    return Contact(TEAM, contact_id or uuid.uuid4().hex, email=email, first_name="Ada", pipeline_ids=[],
                   unsubscribed=False, created_at=now, updated_at=now)


def all_contacts() -> list[Contact]:
    return list(Contact.query(TEAM))


def create_together(emails: list[str]) -> list[tuple[str, str, str | None]]:
    """Every address created at once, one thread each: (address, outcome, contact_id)."""
    start = threading.Barrier(len(emails))

    def create(email: str) -> tuple[str, str, str | None]:
        contact = new_contact(email)
        start.wait()
        try:
            return email, "created", contacts.create_contact(contact).contact_id
        except AddressTaken as taken:
            return email, "taken", taken.contact_id
        except Conflict:  # the holder's claim is written, its contact not yet: 409 "retry"
            return email, "retry", None

    with ThreadPoolExecutor(len(emails)) as pool:
        return list(pool.map(create, emails))


def test_writers_of_one_address_in_any_case_at_once_make_one_contact(aws):
    # given 16 writers, half with one address in various cases, half with their own
    shared = [f"{'ADA' if i % 2 else 'ada'}@Example.com" for i in range(WRITERS // 2)]
    own = [f"p{i}@example.com" for i in range(WRITERS // 2)]

    # when all write at once
    answers = create_together(shared + own)

    # then each own address made its contact, and the shared one made exactly one: the
    # others were refused naming that one (or told to retry while it was being written)
    by_address = {a: (o, c) for a, o, c in answers if a in own}
    assert all(outcome == "created" for outcome, _ in by_address.values())
    on_shared = [(o, c) for a, o, c in answers if a in shared]
    (winner,) = [c for o, c in on_shared if o == "created"]
    assert all((o == "taken" and c == winner) or (o, c) == ("retry", None) for o, c in on_shared if c != winner)
    assert sorted(c.contact_id for c in all_contacts()) == sorted([winner] + [c for _, c in by_address.values()])
    assert AddressClaim.get(TEAM, contacts.claim_sk("ada@example.com")).contact_id == winner
    assert contacts.find_by_email(TEAM, "Ada@EXAMPLE.com").contact_id == winner


def test_writers_taking_over_a_stale_claim_at_once_make_one_contact(aws, frozen_clock):
    # given a claim whose contact was never written (a crash between the two writes), old
    AddressClaim(TEAM, contacts.claim_sk("ada@example.com"), contact_id="gone", claimed_at=clock.now()).save()
    frozen_clock.advance(contacts.CLAIM_GRACE.total_seconds() + 1)

    # when 8 writers of that address come at once
    answers = create_together(["ada@example.com"] * 8)

    # then one took it over (a conditional write on the claim it read), the others lost
    (winner,) = [c for _, o, c in answers if o == "created"]
    assert {o for _, o, c in answers if c != winner} <= {"taken", "retry"}
    assert [c.contact_id for c in all_contacts()] == [winner]
    assert AddressClaim.get(TEAM, contacts.claim_sk("ada@example.com")).contact_id == winner


def test_a_delete_and_a_create_of_its_address_at_once_leave_at_most_one_holder(aws):
    # given a contact, deleted while another writer creates its address (in another case)
    for _ in range(20):
        ada = contacts.create_contact(new_contact("ada@example.com"))
        start = threading.Barrier(2)

        def delete() -> None:
            start.wait()
            contacts.delete_contact(TEAM, ada.contact_id)

        def create() -> str:
            start.wait()
            try:
                return contacts.create_contact(new_contact("ADA@example.com")).contact_id
            except Conflict:
                return ""

        with ThreadPoolExecutor(2) as pool:
            deleted, created = pool.submit(delete), pool.submit(create)
            deleted.result()
            winner = created.result()

        # then either the create lost (409 while ada held it) and the address is free, or
        # it won and holds it: never two contacts, never a claim naming a deleted contact
        remaining = all_contacts()
        assert [c.contact_id for c in remaining] == ([winner] if winner else [])
        holder = contacts.find_by_email(TEAM, "ada@example.com")
        assert (holder.contact_id if holder else "") == winner
        if winner:
            contacts.delete_contact(TEAM, winner)
        with pytest.raises(AddressClaim.DoesNotExist):
            AddressClaim.get(TEAM, contacts.claim_sk("ada@example.com"))


def test_upserts_of_one_address_at_once_make_one_contact_and_change_it(aws):
    from dripline.api import service
    from dripline.api.schemas import ContactIn

    # given 8 CRM syncs of one address (in two cases), each with its own first name
    start = threading.Barrier(8)

    def upsert(i: int) -> tuple[str, str | None]:
        body = ContactIn(email=("ADA" if i % 2 else "ada") + "@example.com", first_name=f"Ada{i}")
        start.wait()
        try:
            contact, created = service.upsert_contact(TEAM, body, clock.now())
            return ("created" if created else "changed"), contact.contact_id
        except AddressTaken:  # never: an upsert changes the holder instead
            return "taken", None
        except Conflict:  # the holder's contact was still being written: 409 "retry"
            return "retry", None

    # when they run at once
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(upsert, range(8)))

    # then one created the contact, the others changed it or were told to retry
    (winner,) = [c for o, c in answers if o == "created"]
    assert all((o == "changed" and c == winner) or (o, c) == ("retry", None) for o, c in answers if c != winner)
    (only,) = all_contacts()
    assert only.contact_id == winner and only.first_name.startswith("Ada")
