"""Service-level failures, mapped to problem+json at the API edge."""

from __future__ import annotations

import uuid


class ServiceError(Exception):
    pass


class NotFound(ServiceError):
    def __init__(self, what: str):
        super().__init__(f"{what} not found")
        self.what = what


class InvalidInput(ServiceError):
    """Well-formed but invalid: ``errors`` maps field paths to messages (422)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class AccessionConflict(ServiceError):
    def __init__(self, accession: str, panel_id: uuid.UUID, differences: list[str] | None = None):
        what = f" ({', '.join(differences[:8])} differ)" if differences else ""
        super().__init__(
            f"accession {accession!r} was already posted by this clinic with different "
            f"content{what}; send corrections to /api/v1/panels/{panel_id}/revisions"
        )
        self.panel_id = panel_id
        self.differences = differences or []


class AlreadyExists(ServiceError):
    pass


class TokenRefused(ServiceError):
    """A presented API token that grants nothing (unknown, revoked or expired); the message
    says which, for the 401."""


class Conflict(ServiceError):
    """The request cannot be done in the resource's present state (409): ``extra`` says what
    the caller needs to know to act (who changed it, when)."""

    def __init__(self, message: str, extra: dict[str, object] | None = None):
        super().__init__(message)
        self.extra = extra or {}


class SignInRefused(ServiceError):
    """An email and password that do not sign anyone in (unknown, wrong, or disabled): one
    message for all three, so the page does not tell which emails exist."""
