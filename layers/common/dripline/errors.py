"""Domain exceptions. The API maps each to one status code, in one place."""


class DriplineError(Exception):
    """Base class for errors the domain raises on purpose."""


class NotFound(DriplineError):
    """The resource does not exist, or belongs to another team (same answer)."""


class Conflict(DriplineError):
    """The request collides with the current state (e.g. an active run already exists)."""


class AddressTaken(Conflict):
    """Another contact of the team holds this email address; `contact_id` names it."""

    def __init__(self, message: str, contact_id: str) -> None:
        super().__init__(message)
        self.contact_id = contact_id


class ValidationFailed(DriplineError):
    """A well-formed request that breaks a rule; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
