"""Row ids: UUIDv7 (RFC 9562), time-ordered.

A new row's id begins with the millisecond it was made, then 74 random bits. Every index on an
id (a panel's, its revision's, the results' and the audit trail's references to them) then
grows at its right end, as a sequence would, instead of at a random page: an insert touches
the few pages that are already in memory, and after a checkpoint it writes one full-page image
to the WAL per new page rather than one per page it happens to land on. With random (v4) ids
the full-page images per new panel grew with the tables (0.26 per panel after 24,000 panels
and a checkpoint, against 0.01 with v7; bench/RESULTS.md), which is write amplification
every replica and backup pays too.

An id is still unguessable (74 random bits) and says nothing a reader of the row cannot see
anyway (its creation time is in ``created_at``). Ids are opaque to clients: API.md promises a
UUID, not its version, and rows made with v4 ids before keep them.
"""

from __future__ import annotations

import uuid

from uuid_utils.compat import uuid7 as _uuid7


def new_id() -> uuid.UUID:
    """A new row id: a standard ``uuid.UUID``, version 7."""
    return _uuid7()
