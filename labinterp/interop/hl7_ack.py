"""HL7 v2 ACKs (original acknowledgment mode), built with hl7apy in the message's own version.

MSA-1 ``AA`` (accepted), ``AE`` (application error: ERR segments name each field that was
wrong) or ``AR`` (rejected: not HL7, no usable MSH, another message type or version). MSA-2
echoes the message's MSH-10. Each ERR names segment, sequence and field: in v2.5 and later as
ERR-2 (``OBX^2^6``) with ERR-3 (HL7 table 0357), ERR-4 (severity) and ERR-8 (the text a
person reads); in v2.3 and v2.4, where ERR has only ERR-1, as ERR-1 repetitions
``OBX^2^6^103&the text&HL70357``. MSA-3 carries a one-line summary in every version.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Literal

from hl7apy.core import Field, Message, Segment

from labinterp.interop.hl7 import SUPPORTED_VERSIONS, Header
from labinterp.interop.hl7_fields import escape

AckCode = Literal["AA", "AE", "AR"]
Severity = Literal["E", "W", "I"]

# HL7 table 0357, message error condition codes
ERROR_CODES = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

_PATH = re.compile(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?")


@dataclass(frozen=True)
class AckError:
    """One ERR: where (``OBX[2]-6``, ``PID-3``, ``OBR[1]``, or "" for the whole message), what
    (HL7 table 0357 code) and the text a person reads."""

    path: str
    text: str
    code: str = "207"
    severity: Severity = "E"

    def location(self) -> tuple[str, str, str]:
        """(segment, sequence, field) as ERR writes them; a segment without ``[n]`` is its
        first (PID-3 -> PID, 1, 3)."""
        match = _PATH.match(self.path)
        if not match:
            return "", "", ""
        segment, sequence, number = match.groups()
        return segment, sequence or "1", number or ""


def _modern(version: str) -> bool:
    return version not in ("2.3", "2.3.1", "2.4")


def build_ack(
    header: Header,
    code: AckCode,
    text: str,
    errors: list[AckError] | tuple[AckError, ...] = (),
    now: dt.datetime | None = None,
) -> str:
    """The ACK (ER7, segments ending in CR) answering the message ``header`` describes."""
    version = header.version if header.version in SUPPORTED_VERSIONS else "2.5.1"
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    ack = Message("ACK", version=version)
    msh = ack.msh
    msh.msh_3 = _component(header.receiving_application) or "labinterp"
    if header.receiving_facility:
        msh.msh_4 = _component(header.receiving_facility)
    if header.sending_application:
        msh.msh_5 = _component(header.sending_application)
    if header.sending_facility:
        msh.msh_6 = _component(header.sending_facility)
    msh.msh_7 = moment.strftime("%Y%m%d%H%M%S") + "+0000"
    # the trigger event answered (MSH-9.2 of the message), R01 when it named none
    parts = header.message_type.split(header.separators[1]) if header.message_type else []
    trigger = escape(parts[1] if len(parts) > 1 and parts[1] else "R01")[:3]
    msh.msh_9 = f"ACK^{trigger}" if version == "2.3" else f"ACK^{trigger}^ACK"
    msh.msh_10 = uuid.uuid4().hex[:20]  # ST(20) in v2.3
    msh.msh_11 = escape(header.processing_id or "P")[:3]
    ack.msa.msa_1 = code
    ack.msa.msa_2 = escape(header.control_id)[:199]
    if text:
        ack.msa.msa_3 = escape(text if len(text) <= 80 else text[:79] + "…")  # ST(80)
    if errors:
        if _modern(version):
            for error in errors:
                ack.add(_err_modern(error, version))
        elif any(error.severity == "E" for error in errors):
            # v2.3/2.4's single ERR has no severity: only errors go in it
            ack.add(_err_legacy([e for e in errors if e.severity == "E"], version))
    return str(ack.to_er7()) + "\r"


def _component(value: str) -> str:
    """An HD field of the received MSH, echoed: its first component (the namespace id)."""
    return value.split("^", 1)[0]


def _err_modern(error: AckError, version: str) -> Segment:
    segment, sequence, number = error.location()
    err = Segment("ERR", version=version)
    if segment:
        err.err_2 = "^".join(part for part in (segment, sequence, number) if part)
    err.err_3 = f"{error.code}^{escape(ERROR_CODES.get(error.code, ''))}^HL70357"
    err.err_4 = error.severity
    err.err_8 = escape(error.text)
    return err


def _err_legacy(errors: list[AckError] | tuple[AckError, ...], version: str) -> Segment:
    err = Segment("ERR", version=version)
    for error in errors:
        segment, sequence, number = error.location()
        # the code's text subcomponent carries the message: ERR-1 has no other place for it
        text = escape(error.text)  # its & becomes \T\: it sits in a subcomponent
        item = Field("ERR_1", version=version)
        item.value = f"{segment}^{sequence}^{number}^{error.code}&{text}&HL70357"
        err.add(item)
    return err
