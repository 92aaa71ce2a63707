"""HL7 v2 ORU^R01 in: one message, parsed with hl7apy, as one panel document per OBR group.

Pure: the ruleset (which LOINC codes are ours), the clinic's code table (a lookup) and the
clinic's time zone are arguments. Paths are the sender's: ``OBX[2]-6`` is field 6 of the
message's second OBX segment (segments counted from 1 through the whole message, as ERR-2's
sequence counts them), ``PID-3`` field 3 of the PID the group belongs to.

What becomes of each OBX (API.md "Interoperability"):
- OBX-3 coded ``LN`` (or with an ``LN`` alternate code) and a LOINC of one of our analytes: a
  result; another LOINC (haemoglobin, erythrocyte magnesium) or a local code the clinic's table
  does not map: kept in ``not_interpreted``;
- OBX-5 NM or SN (``^182``); a censored value (``<7``, ``<^7``) is kept, named as censored,
  never guessed; text values (CWE, TX, a ratio): not interpreted;
- OBX-11 ``X`` (cannot be obtained), ``D``, ``W``, ``I``, ``N``: not interpreted; ``C``: the
  group is a correction (a new revision); ``P``, ``R``, ``S``: interpreted, and the group is
  preliminary.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from hl7apy.core import Field, Message, Segment
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from labinterp.domain import Ruleset
from labinterp.interop import hl7_fields
from labinterp.interop.intake import Translated

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
BOM = "\ufeff"

# OBX-11 result status (HL7 table 0085)
INTERPRETED_STATUSES = {"F", "C", "U", "P", "R", "S", ""}
PRELIMINARY_STATUSES = {"P", "R", "S"}
_STATUS_WORDS = {
    "X": "results cannot be obtained for this observation (OBX-11 X)",
    "D": "the sender deleted this result (OBX-11 D)",
    "W": "the sender posted this result as wrong (OBX-11 W)",
    "I": "the specimen is in the lab, no result yet (OBX-11 I)",
    "N": "not asked for (OBX-11 N)",
}
NUMERIC_TYPES = {"NM", "SN", "ST", ""}

# the clinic's code table: (coding system as sent in OBX-3.3, code) -> analyte key or None
LocalLookup = Callable[[str, str], str | None]

Kind = Literal["final", "correction", "preliminary"]


class Unprocessable(Exception):
    """What cannot be processed at all (ACK ``AR``): not HL7, no usable MSH, another message
    type or version. ``code`` is HL7 table 0357's (200 unsupported message type, 203
    unsupported version, …)."""

    def __init__(self, text: str, code: str = "207", header: Header | None = None):
        super().__init__(text)
        self.text = text
        self.code = code
        self.header = header


@dataclass(frozen=True)
class Header:
    """What an ACK needs of the message's MSH."""

    control_id: str = ""
    version: str = "2.5.1"
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    processing_id: str = "P"
    message_type: str = ""
    separators: str = "|^~\\&"


@dataclass(frozen=True)
class Order:
    """One OBR group: its panel document (``translated``), or the reasons it has none yet
    (``errors``: sender's path -> messages)."""

    index: int  # OBR[n]
    translated: Translated
    kind: Kind = "final"
    errors: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class OruMessage:
    header: Header
    orders: tuple[Order, ...]


def decode(data: bytes | str) -> str:
    """The message as text with CR segment endings: a UTF-8 byte-order mark dropped, LF or
    CRLF endings read as CR, blank lines and the blanks around segments dropped. UTF-8, else
    ISO 8859-1 (which MSH-18 ``8859/1`` names and every byte decodes as)."""
    text = _text(data).lstrip(BOM + " \t\r\n\x0b")
    lines = re.split(r"\r\n|\r|\n", text)
    return "\r".join(line.strip("\x1c\x0b") for line in lines if line.strip(" \t\x1c\x0b"))


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_header(text: str) -> Header:
    """The MSH's fields an ACK needs, read without hl7apy (so that a message hl7apy refuses
    still gets an ACK that echoes its control id). Raises :class:`Unprocessable` for text
    that does not begin with an MSH segment."""
    if not text.startswith("MSH") or len(text) < 8:
        raise Unprocessable("not an HL7 v2 message: it must begin with an MSH segment", "100")
    sep = text[3]
    msh = text.split("\r", 1)[0]
    fields = msh.split(sep)
    encoding = fields[1] if len(fields) > 1 else ""
    if len(encoding) < 4 or sep.isalnum() or any(c.isalnum() for c in encoding[:4]):
        raise Unprocessable(
            "the MSH segment has no usable encoding characters in MSH-1/MSH-2 (|^~\\&)", "102"
        )
    component = encoding[0]

    def at(n: int) -> str:  # MSH-n is fields[n - 1]: MSH-1 is the separator itself
        return fields[n - 1] if len(fields) > n - 1 else ""

    return Header(
        control_id=at(10).split(component)[0],
        version=at(12).split(component)[0].strip() or "2.5.1",
        sending_application=at(3),
        sending_facility=at(4),
        receiving_application=at(5),
        receiving_facility=at(6),
        processing_id=at(11).split(component)[0] or "P",
        message_type=at(9),
        separators=sep + encoding[:4],
    )


def parse_oru(
    data: bytes | str, ruleset: Ruleset, local_analyte: LocalLookup, zone: dt.tzinfo
) -> OruMessage:
    """Parse an ORU^R01 into one :class:`Order` per OBR group. Raises :class:`Unprocessable`
    for what is not an ORU^R01 of a supported version, or what hl7apy cannot parse."""
    source = _text(data)
    text = decode(data)
    header = read_header(text)
    if "\x00" in source:
        raise Unprocessable(
            "the message holds a NUL byte, which no HL7 v2 message does", "102", header
        )
    kind = header.message_type.split(header.separators[1])
    if kind[0] != "ORU" or (len(kind) > 1 and kind[1] not in ("R01", "")):
        raise Unprocessable(
            f"message type {header.message_type.replace(header.separators[1], '^')!r} is not "
            "accepted here: send ORU^R01 (unsolicited observation results)",
            "200" if kind[0] != "ORU" else "201",
            header,
        )
    if header.version not in SUPPORTED_VERSIONS:
        raise Unprocessable(
            f"HL7 version {header.version!r} (MSH-12) is not supported: send "
            f"{', '.join(SUPPORTED_VERSIONS)}",
            "203",
            header,
        )
    segments = text.split("\r")
    if sum(1 for segment in segments if segment[:3] in _READ) > MAX_SEGMENTS:
        raise Unprocessable(
            f"the message has more than {MAX_SEGMENTS} PID, OBR and OBX segments: send its "
            "results in several messages",
            "207",
            header,
        )
    try:
        message = parse_message(_what_is_read(segments, header.separators[0]), find_groups=False)
    except (HL7apyException, ValueError, IndexError, KeyError, TypeError) as exc:
        raise Unprocessable(
            f"the message could not be parsed as HL7 v2: {exc}", "102", header
        ) from None
    reader = _Reader(message, header, ruleset, local_analyte, zone, source)
    return OruMessage(header, tuple(reader.orders()))


# the fields read of each segment; the rest (performing organisation, addresses, NTE, SPM …)
# is kept in the stored source but never parsed: hl7apy takes milliseconds per field
_READ = {"MSH": 12, "PID": 8, "OBR": 7, "OBX": 14}
MAX_SEGMENTS = 1000  # about a second of hl7apy on a laptop; a JSON panel holds 100 results


def _what_is_read(segments: list[str], separator: str) -> str:
    """The message reduced to the segments and fields :class:`_Reader` reads (the others are
    dropped, which changes no segment's sequence number: those count segments of one name)."""
    kept: list[str] = []
    for segment in segments:
        last = _READ.get(segment[:3])
        if last is not None:
            # MSH-1 is the separator itself: MSH-n is element n - 1 of the split
            fields = segment.split(separator)[: last if segment[:3] == "MSH" else last + 1]
            kept.append(separator.join(fields))
    return "\r".join(kept)


class _Reader:
    def __init__(
        self,
        message: Message,
        header: Header,
        ruleset: Ruleset,
        local_analyte: LocalLookup,
        zone: dt.tzinfo,
        source: str,
    ) -> None:
        self.message = message
        self.header = header
        self.ruleset = ruleset
        self.local_analyte = local_analyte
        self.zone = zone
        self.source = source
        sep = header.separators
        self.separators = {"F": sep[0], "S": sep[1], "R": sep[2], "E": sep[3], "T": sep[4]}

    # --- fields as text ----------------------------------------------------------------------

    def text(self, value: str) -> str:
        return hl7_fields.unescape(value, self.separators["E"], self.separators)

    def components(self, item: Field | None) -> list[str]:
        """A field repetition's components, positionally, escapes read back. (hl7apy names a
        component past its datatype's last one None, and lists only those present.)"""
        if item is None:
            return []
        er7 = item.to_er7()
        return [self.text(part) for part in er7.split(self.separators["S"])] if er7 else []

    def repetitions(self, segment: Segment, number: int) -> list[Field]:
        name = f"{segment.name}_{number}"
        return [child for child in segment.children if child.name == name]

    def first(self, segment: Segment, number: int, component: int = 1) -> str:
        reps = self.repetitions(segment, number)
        parts = self.components(reps[0]) if reps else []
        return parts[component - 1].strip() if len(parts) >= component else ""

    # --- the message -------------------------------------------------------------------------

    def orders(self) -> Iterable[Order]:
        counts: dict[str, int] = {}
        pid: tuple[Segment, int] | None = None
        group: tuple[Segment, int, tuple[Segment, int] | None] | None = None
        obx: list[tuple[Segment, int]] = []
        orders: list[Order] = []
        for segment in self.message.children:
            name = segment.name
            counts[name] = counts.get(name, 0) + 1
            if name == "PID":
                if group is not None:
                    orders.append(self.order(*group, obx))
                    group, obx = None, []
                pid = (segment, counts[name])
            elif name == "OBR":
                if group is not None:
                    orders.append(self.order(*group, obx))
                group, obx = (segment, counts[name], pid), []
            elif name == "OBX" and group is not None:
                obx.append((segment, counts[name]))
        if group is not None:
            orders.append(self.order(*group, obx))
        if not orders:
            raise Unprocessable(
                "the message has no OBR segment: an ORU^R01 reports results in OBR groups",
                "100",
                self.header,
            )
        return orders

    def order(
        self,
        obr: Segment,
        index: int,
        pid: tuple[Segment, int] | None,
        observations: list[tuple[Segment, int]],
    ) -> Order:
        errors: dict[str, list[str]] = {}
        paths: dict[str, str] = {}
        not_interpreted: list[dict[str, str]] = []
        obr_path = f"OBR[{index}]"

        def error(path: str, message: str) -> None:
            errors.setdefault(path, []).append(message)

        document: dict[str, Any] = {}
        accession = self.first(obr, 3) or self.first(obr, 2)
        paths["accession"] = f"{obr_path}-3" if self.first(obr, 3) else f"{obr_path}-2"
        if accession:
            document["accession"] = accession
        else:
            error(
                f"{obr_path}-3",
                "no accession: OBR-3 (filler order number) or OBR-2 (placer order number) "
                "is required",
            )
        document["patient"] = self.patient(pid, paths, error)

        collected, collected_path = self.first(obr, 7), f"{obr_path}-7"
        if not collected:
            for segment, n in observations:
                if self.first(segment, 14):
                    collected, collected_path = self.first(segment, 14), f"OBX[{n}]-14"
                    break
        paths["collected_at"] = collected_path
        if not collected:
            error(
                collected_path,
                "no collection time: OBR-7 (observation date/time), or OBX-14, is required",
            )
        else:
            try:
                moment = hl7_fields.timestamp(collected, self.zone)
                if moment is not None:
                    document["collected_at"] = moment.isoformat()
            except hl7_fields.BadTime as exc:
                error(collected_path, str(exc))

        results: list[dict[str, Any]] = []
        statuses: set[str] = set()
        for segment, n in observations:
            result = self.observation(segment, n, not_interpreted, statuses, error)
            if result is not None:
                prefix = f"results.{len(results)}"
                obx = f"OBX[{n}]"
                paths[prefix] = obx
                for name, number in (
                    ("analyte", 3),
                    ("loinc", 3),
                    ("value", 5),
                    ("unit", 6),
                    ("reference_range", 7),
                    ("sender_flag", 8),
                ):
                    paths[f"{prefix}.{name}"] = f"{obx}-{number}"
                results.append(result)
        paths["results"] = obr_path
        if observations and not results:
            named = "; ".join(
                f"{item['path']} {item['display'] or item['code']}: {item['reason']}"
                for item in not_interpreted[:5]
            )
            error(
                obr_path,
                f"none of the {len(observations)} results of {obr_path} is one labinterp "
                f"interprets ({named}{' …' if len(not_interpreted) > 5 else ''})",
            )
        elif not observations:
            error(obr_path, f"{obr_path} has no OBX segment: there is no result to interpret")
        document["results"] = results
        kind: Kind = (
            "correction"
            if "C" in statuses
            else "preliminary"
            if statuses & PRELIMINARY_STATUSES
            else "final"
        )
        translated = Translated(
            document=document,
            paths=paths,
            not_interpreted=not_interpreted,
            source_format="hl7v2",
            source_text=self.source,
        )
        return Order(index=index, translated=translated, kind=kind, errors=errors)

    def patient(
        self,
        pid: tuple[Segment, int] | None,
        paths: dict[str, str],
        error: Callable[[str, str], None],
    ) -> dict[str, Any]:
        # the message's n-th PID (PID[2]-3) when there are several; PID-3 for the first
        at = "PID" if pid is None or pid[1] == 1 else f"PID[{pid[1]}]"
        paths.update(
            {"patient": at, "patient.id": f"{at}-3", "patient.sex": f"{at}-8"}
            | {"patient.birth_date": f"{at}-7", "patient.age_years": f"{at}-7"}
        )
        if pid is None:
            error("PID", "no PID segment before this OBR: the patient is required")
            return {}
        segment, _ = pid
        patient: dict[str, Any] = {}
        identifier = self.first(segment, 3)
        if identifier:
            patient["id"] = identifier
        else:
            error(f"{at}-3", "no patient identifier: PID-3 (first repetition) is required")
        sex = self.first(segment, 8).upper()
        patient["sex"] = {"F": "female", "M": "male"}.get(sex, "unknown")
        try:
            birth = hl7_fields.date_part(self.first(segment, 7))
        except hl7_fields.BadTime as exc:
            error(f"{at}-7", str(exc))
        else:
            if birth is not None:
                patient["birth_date"] = birth.isoformat()
        return patient

    def observation(
        self,
        segment: Segment,
        n: int,
        not_interpreted: list[dict[str, str]],
        statuses: set[str],
        error: Callable[[str, str], None],
    ) -> dict[str, Any] | None:
        """The API result of one OBX, or None with what it was and why kept aside added to
        ``not_interpreted``."""
        path = f"OBX[{n}]"
        reps = self.repetitions(segment, 3)
        coded = self.components(reps[0]) if reps else []
        code, display, system = [*coded, "", "", ""][:3]
        code, display, system = code.strip(), display.strip(), system.strip()

        def keep(reason: str, at: str = path) -> None:
            not_interpreted.append(
                {"path": at, "code": code, "display": display or code, "reason": reason}
            )

        identified = self.identify(coded)
        if isinstance(identified, str):  # a reason it is not one of ours
            keep(identified, f"{path}-3")
            return None
        status = self.first(segment, 11).upper()
        if status not in INTERPRETED_STATUSES:
            keep(_STATUS_WORDS.get(status, f"result status OBX-11 {status!r}"), f"{path}-11")
            return None
        value_type = self.first(segment, 2).upper()
        if value_type not in NUMERIC_TYPES:
            keep(f"a {value_type} value, not a number", f"{path}-2")
            return None
        values = self.repetitions(segment, 5)
        parts = self.components(values[0]) if values else []
        if value_type == "SN":
            value = hl7_fields.structured_numeric(parts)
        else:
            value = hl7_fields.plain_numeric(
                self.separators["S"].join(parts).rstrip(self.separators["S"])
            )
        if value.censored is not None:
            keep(
                f"censored value {value.censored!r} (beyond the lab's limit of measurement): "
                "kept, not interpreted, never guessed",
                f"{path}-5",
            )
            return None
        statuses.add(status)
        result: dict[str, Any] = dict(identified)
        if value.number is not None:
            result["value"] = value.number
        elif value.reason is not None and any(part.strip() for part in parts):
            error(f"{path}-5", f"{value.reason} ({value_type or 'NM'} value of {code})")
            return None
        unit = self.first(segment, 6)
        if unit:
            result["unit"] = unit
        rr = hl7_fields.reference_range(self.first(segment, 7))
        if rr:
            result["reference_range"] = rr
        flags = [self.first_of(rep) for rep in self.repetitions(segment, 8)]
        flags = [flag for flag in flags if flag]
        if flags:
            result["sender_flag"] = "~".join(flags)
        return result

    def first_of(self, item: Field) -> str:
        parts = self.components(item)
        return parts[0].strip() if parts else ""

    def identify(self, coded: list[str]) -> dict[str, str] | str:
        """OBX-3 as ``{"loinc": …}`` or ``{"analyte": …}``; a string says why it is neither.
        The identifier (components 1-3), then the alternate (4-6), as LOINC (``LN``) or
        through the clinic's code table."""
        padded = coded + [""] * 6
        pairs = [(padded[0].strip(), padded[2].strip()), (padded[3].strip(), padded[5].strip())]
        reasons: list[str] = []
        for code, system in pairs:
            if not code:
                continue
            if system.upper() == "LN":
                if code in self.ruleset.loinc_index:
                    return {"loinc": code}
                refused = self.ruleset.refused_loinc.get(code)
                reasons.append(
                    f"LOINC {code} is {refused.reason}, not a serum result of an analyte "
                    "labinterp interprets"
                    if refused is not None
                    else f"LOINC {code} is not an analyte labinterp interprets"
                )
                continue
            analyte = self.local_analyte(system, code)
            if analyte is not None:
                return {"analyte": analyte}
            reasons.append(
                f"local code {code!r}"
                + (f" ({system})" if system else "")
                + " is not in the clinic's code table (labinterp codes import)"
            )
        return "; ".join(reasons) or "OBX-3 names no observation"
