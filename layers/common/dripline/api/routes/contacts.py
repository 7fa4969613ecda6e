from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from dripline import clock, runtime
from dripline.api import pagination, service, views
from dripline.api.identity import current_team
from dripline.api.routes import AUTH, EmailQuery, Limit, NextToken, created, no_content, ok
from dripline.api.schemas import AssignIn, ContactIn, ContactOut, ContactPage, ContactPatch, MessagePage, RunList, RunOut
from dripline.storage import contacts

router = Router()
TAGS = ["contacts"]
Upsert = Annotated[bool, Query(
    description="true: if a contact of the team has this address (in any case), change it with the fields the body "
    "gives and answer 200, else create it (201). For clients that sync from a CRM.",
)]


@router.post(
    "/contacts", operation_id="create_contact",
    summary="Create a contact",
    description="The contact is enrolled, shortly and asynchronously, in every automatic pipeline of the team "
    "plus its `pipeline_ids` (one run per pipeline). An address is unique in the team, matched trimmed and "
    "lowercased (the contact keeps it as typed): 409 with the `contact_id` holding it, unless `upsert=true`. "
    "A suppressed address may be created (its runs go on) but is never emailed.",
    tags=TAGS, security=AUTH,
    responses={**ok("Created", 201, 400, 409, 413), 200: {"description": "Changed (`upsert=true`, the address existed)"}},
)
def create_contact(body: ContactIn, upsert: Upsert = False) -> Response[ContactOut]:
    team, now = current_team(router), clock.now()
    if not upsert:
        return created(views.contact(service.create_contact(team, body, now)))
    contact, new = service.upsert_contact(team, body, now)
    if new:
        return created(views.contact(contact))
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=views.contact(contact))


@router.get(
    "/contacts", operation_id="list_contacts", summary="List contacts",
    description="With `email`, the contact holding that address (any case): a page of one, or of none.",
    tags=TAGS, security=AUTH, responses=ok("A page of contacts", 200, 400),
)
def list_contacts(limit: Limit = 50, next_token: NextToken = None, email: EmailQuery = None) -> ContactPage:
    team, secret = current_team(router), runtime.settings().token_secret
    if email is not None:
        return ContactPage(items=[views.contact(c) for c in service.find_contact_by_email(team, email)])
    start = pagination.decode(secret, team, "contacts", next_token)
    items, key = contacts.list_contacts(team, limit=limit, start_key=start)
    return ContactPage(items=[views.contact(c) for c in items], next_token=pagination.encode(secret, team, "contacts", key))


@router.get("/contacts/<contact_id>", operation_id="get_contact", summary="A contact", tags=TAGS, security=AUTH, responses=ok("The contact", 200, 404))
def get_contact(contact_id: str) -> ContactOut:
    return views.contact(contacts.get_contact(current_team(router), contact_id))


@router.patch(
    "/contacts/<contact_id>", operation_id="patch_contact",
    summary="Change any subset of a contact's fields",
    description="`pipeline_ids` replaces the manual set (added ids get runs, removed ids get their runs "
    "cancelled); `unsubscribed: true` cancels the contact's active runs and stops all email to it.",
    tags=TAGS, security=AUTH,
    responses=ok("The contact", 200, 400, 404, 409, 413),
)
def patch_contact(contact_id: str, body: ContactPatch) -> ContactOut:
    return views.contact(service.patch_contact(current_team(router), contact_id, body, clock.now()))


@router.delete(
    "/contacts/<contact_id>", operation_id="delete_contact", summary="Delete a contact (its active runs are cancelled)", tags=TAGS, security=AUTH, responses=ok("Deleted", 204, 404)
)
def delete_contact(contact_id: str) -> Response[None]:
    service.delete_contact(current_team(router), contact_id)
    return no_content()


@router.get("/contacts/<contact_id>/runs", operation_id="contact_runs", summary="Every run of a contact", tags=TAGS, security=AUTH, responses=ok("Its runs, oldest first", 200, 404))
def contact_runs(contact_id: str) -> RunList:
    return RunList(items=[views.run(r) for r in service.contact_runs(current_team(router), contact_id)])


@router.get(
    "/contacts/<contact_id>/messages", operation_id="contact_messages",
    summary="The contact's delivery log",
    description="Each email SES accepted for the contact (newest first): its pipeline, step, SES message id, "
    "when it was sent, and the latest SES event (delivered, bounced, complained, opened, clicked) with its "
    "time. Built from SES's own events (each recorded once), so an email appears once SES reports it.",
    tags=TAGS, security=AUTH,
    responses=ok("A page of its emails", 200, 400, 404),
)
def contact_messages(contact_id: str, limit: Limit = 50, next_token: NextToken = None) -> MessagePage:
    team, secret = current_team(router), runtime.settings().token_secret
    scope = f"messages:{contact_id}"
    start = pagination.decode(secret, team, scope, next_token)
    items, key = service.contact_messages(team, contact_id, limit=limit, start_key=start)
    return MessagePage(items=[views.message(m) for m in items], next_token=pagination.encode(secret, team, scope, key))


@router.post(
    "/contacts/<contact_id>/runs", operation_id="assign",
    summary="Assign a contact to a pipeline now",
    description="Creates the run synchronously. 409 if a run of that pipeline is active for the contact, or "
    "the contact is unsubscribed; 422 naming `pipeline_id` if it is not an active pipeline of the team.",
    tags=TAGS, security=AUTH,
    responses=ok("The new run", 201, 400, 404, 409),
)
def assign(contact_id: str, body: AssignIn) -> Response[RunOut]:
    settings = runtime.settings()
    run = service.assign(current_team(router), contact_id, body.pipeline_id, clock.now(), settings)
    return created(views.run(run))


@router.delete(
    "/contacts/<contact_id>/runs/<run_id>", operation_id="unassign",
    summary="Remove a contact from a run's pipeline",
    description="The run is cancelled and the pipeline leaves the contact's `pipeline_ids`; it is not re-created.",
    tags=TAGS, security=AUTH,
    responses=ok("Cancelled", 204, 404),
)
def unassign(contact_id: str, run_id: str) -> Response[None]:
    service.unassign(current_team(router), contact_id, run_id, clock.now())
    return no_content()
