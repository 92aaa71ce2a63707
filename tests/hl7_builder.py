"""ORU^R01 messages built with hl7apy for tests, and ACKs parsed back with it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from hl7apy.core import Message, Segment
from hl7apy.parser import parse_message


@dataclass
class Obx:
    code: str = "2601-3"
    display: str = "Magnesium"
    system: str = "LN"
    value: str = "0.85"
    value_type: str = "NM"
    unit: str = "mmol/L"
    range: str = ""
    flag: str = ""
    status: str = "F"
    observed: str = ""


@dataclass
class Obr:
    results: list[Obx]
    filler: str = ""  # OBR-3
    placer: str = ""  # OBR-2
    collected: str = "202611200830"  # OBR-7


@dataclass
class Patient:
    id: str = "P-0042"
    sex: str = "F"
    birth: str = "19840309"


@dataclass
class Oru:
    orders: list[Obr]
    patient: Patient = field(default_factory=Patient)
    version: str = "2.5.1"
    control_id: str = field(default_factory=lambda: uuid.uuid4().hex[:20])
    message_type: str = "ORU^R01^ORU_R01"

    def er7(self, ending: str = "\r") -> str:
        v = self.version
        message = Message("ORU_R01", version=v)
        msh = message.msh
        msh.msh_3 = "LABSYS"
        msh.msh_4 = "CITYLAB"
        msh.msh_5 = "LABINTERP"
        msh.msh_9 = self.message_type if v != "2.3" else self.message_type.rsplit("^", 1)[0]
        msh.msh_10 = self.control_id
        msh.msh_11 = "P"
        segments = [msh.to_er7()]
        pid = Segment("PID", version=v)
        pid.pid_1 = "1"
        pid.pid_3 = f"{self.patient.id}^^^CITYLAB^MR"
        pid.pid_5 = "DOE^JANE"
        if self.patient.birth:
            pid.pid_7 = self.patient.birth
        if self.patient.sex:
            pid.pid_8 = self.patient.sex
        segments.append(pid.to_er7())
        n = 0
        for i, order in enumerate(self.orders, 1):
            obr = Segment("OBR", version=v)
            obr.obr_1 = str(i)
            if order.placer:
                obr.obr_2 = order.placer
            if order.filler:
                obr.obr_3 = order.filler
            obr.obr_4 = "24362-6^Renal function panel^LN"
            if order.collected:
                obr.obr_7 = order.collected
            segments.append(obr.to_er7())
            for result in order.results:
                n += 1
                obx = Segment("OBX", version=v)
                obx.obx_1 = str(n)
                obx.obx_2 = result.value_type
                obx.obx_3 = f"{result.code}^{result.display}^{result.system}"
                if result.value:
                    obx.obx_5 = result.value
                if result.unit:
                    obx.obx_6 = result.unit
                if result.range:
                    obx.obx_7 = result.range
                if result.flag:
                    obx.obx_8 = result.flag
                obx.obx_11 = result.status
                if result.observed:
                    obx.obx_14 = result.observed
                segments.append(obx.to_er7())
        return ending.join(segments) + ending

    def bytes(self, ending: str = "\r", bom: bool = False) -> bytes:
        return (b"\xef\xbb\xbf" if bom else b"") + self.er7(ending).encode()


@dataclass
class Ack:
    code: str  # MSA-1
    control_id: str  # MSA-2
    text: str  # MSA-3
    errors: list[dict[str, Any]]  # {"location": "OBX^2^6", "code": "103", "text": …}
    version: str
    message: Any


def parse_ack(text: str | bytes) -> Ack:
    """An ACK read back with hl7apy: MSA and each ERR (v2.5: ERR-2/3/8; v2.3/2.4: ERR-1)."""
    if isinstance(text, bytes):
        text = text.decode()
    message = parse_message(text.replace("\n", "\r"), find_groups=False)
    msa = next(s for s in message.children if s.name == "MSA")
    errors: list[dict[str, Any]] = []
    for err in (s for s in message.children if s.name == "ERR"):
        if message.version in ("2.5", "2.5.1"):
            errors.append(
                {
                    "location": err.err_2.to_er7(),
                    "code": err.err_3.to_er7().split("^")[0],
                    "severity": err.err_4.to_er7(),
                    "text": _unescape(err.err_8.to_er7()),
                }
            )
        else:
            for rep in (c for c in err.children if c.name == "ERR_1"):
                parts = rep.to_er7().split("^")
                code = parts[3].split("&") if len(parts) > 3 else ["", ""]
                errors.append(
                    {
                        "location": "^".join(parts[:3]),
                        "code": code[0],
                        "severity": "E",
                        "text": _unescape(code[1] if len(code) > 1 else ""),
                    }
                )
    return Ack(
        code=msa.msa_1.to_er7(),
        control_id=msa.msa_2.to_er7(),
        text=_unescape(msa.msa_3.to_er7()),
        errors=errors,
        version=message.version,
        message=message,
    )


def _unescape(text: str) -> str:
    for code, char in (("F", "|"), ("S", "^"), ("T", "&"), ("R", "~"), ("E", "\\")):
        text = text.replace(f"\\{code}\\", char)
    return text
