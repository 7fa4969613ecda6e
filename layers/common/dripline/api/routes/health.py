from aws_lambda_powertools.event_handler.api_gateway import Router

from dripline.api.schemas import Health

router = Router()


@router.get("/health", operation_id="health", summary="Liveness (no token)", tags=["health"])
def health() -> Health:
    return Health(status="ok")
