"""The HTTP API (API Gateway HTTP API, payload 2.0) over the domain.

`app.handle(event, context)` is the whole API: public-path and identity checks, the
body size limit, then Powertools' APIGatewayHttpResolver with pydantic validation.
Routes live in `routes/` by resource; `service` holds the operations they call,
`schemas` the request/response models (which are also the OpenAPI document).
"""
