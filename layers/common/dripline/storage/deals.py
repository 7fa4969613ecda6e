"""Deals: the second pipelineable type. Their table's stream drives enrollment, as the contacts' does."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist

from dripline import observability
from dripline.domain import DealView
from dripline.errors import NotFound
from dripline.storage.models import Deal
from dripline.storage.util import delete_record, modify_record, plain


def get_deal(team_id: str, deal_id: str) -> Deal:
    try:
        return Deal.get(team_id, deal_id, consistent_read=True)
    except DoesNotExist as exc:
        raise NotFound(f"deal {deal_id} not found") from exc


def find_deal(team_id: str, deal_id: str) -> Deal | None:
    try:
        return get_deal(team_id, deal_id)
    except NotFound:
        return None


def find_deals(team_id: str, deal_ids: list[str]) -> dict[str, Deal]:
    """The team's deals among `deal_ids` that exist, by id (strongly consistent BatchGetItem)."""
    keys = [(team_id, deal_id) for deal_id in dict.fromkeys(deal_ids)]
    if not keys:
        return {}
    return {d.deal_id: d for d in Deal.batch_get(keys, consistent_read=True)}


def deal_from_stream_image(image: dict[str, Any]) -> Deal:
    """A stream record's NewImage/OldImage (DynamoDB JSON) as a Deal; ValueError for a poison record."""
    deal = Deal.from_raw_data(image)
    for name in ("team_id", "deal_id", "name", "created_at", "updated_at"):
        if not getattr(deal, name, None):
            raise ValueError(f"deal image without {name}")
    return deal


def view(deal: Deal) -> DealView:
    return DealView(
        team_id=deal.team_id,
        deal_id=deal.deal_id,
        name=deal.name,
        value=deal.value,
        stage=deal.stage,
        owner_email=deal.owner_email,
        contact_ids=tuple(deal.contact_ids or ()),
        attributes=plain(deal.attributes) or {},
    )


def create_deal(deal: Deal) -> Deal:
    """Write a new deal (its stream INSERT enrolls it in the team's automatic deal pipelines)."""
    deal.correlation_id = observability.correlation_id()  # the stream record's cause
    deal.save(condition=Deal.deal_id.does_not_exist())
    return deal


def modify_deal(team_id: str, deal_id: str, change: Callable[[Deal], dict[str, Any]], now: datetime) -> Deal:
    """One conditional update (dripline.storage.util.modify_record); NotFound for an unknown deal."""
    return modify_record(lambda: get_deal(team_id, deal_id), change, now, what=f"deal {deal_id}")


def delete_deal(team_id: str, deal_id: str) -> Deal:
    """Delete a deal (its stream REMOVE cancels its runs); NotFound if unknown."""
    return delete_record(get_deal(team_id, deal_id), f"deal {deal_id}")


def list_deals(team_id: str, *, limit: int = 50, start_key: dict | None = None) -> tuple[list[Deal], dict | None]:
    """A page of the team's deals and the key to continue from (None at the end)."""
    result = Deal.query(team_id, limit=limit, last_evaluated_key=start_key)
    return list(result), result.last_evaluated_key
