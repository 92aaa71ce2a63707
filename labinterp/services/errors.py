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


def in_sender_terms(errors: dict[str, list[str]], paths: dict[str, str]) -> dict[str, list[str]]:
    """``errors`` keyed by the sender's paths (a FHIRPath, an HL7 v2 field): each API path
    through ``paths``; a path not mapped itself takes its nearest mapped parent's
    (``results.1.reference_range.low`` -> ``OBX[2]`` when only ``results.1`` is mapped); with
    none, the API path stays. Messages that land on one path are merged."""
    out: dict[str, list[str]] = {}
    for path, messages in errors.items():
        parts = path.split(".")
        mapped = path
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in paths:
                mapped = paths[prefix]
                break
        out.setdefault(mapped, []).extend(messages)
    return out


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
