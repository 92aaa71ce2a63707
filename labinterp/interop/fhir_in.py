"""FHIR R4 in: a Bundle (or a lone DiagnosticReport or Observation) read with fhir.resources
(R4B models) and translated into the API's panel document (API.md "Interoperability" says
where each field comes from).

What is judged: each Observation the report holds (the DiagnosticReport's results, else every
Observation of the Bundle; ``hasMember`` panels and ``contained`` resources followed) whose LOINC
code the ruleset maps to an analyte, with a ``valueQuantity``. Everything else the report holds
is kept in ``not_interpreted`` with the reason and named in the answer, never mistaken for one
of our analytes: erythrocyte magnesium (the ruleset refuses 2593-2), albumin by electrophoresis
(2862-1, 13980-8 percent), a urine specimen, a value given as text or censored (``<1``), a
result with a range and no value, and every code the ruleset does not judge.

Choices a sender should know (README "FHIR R4"):

* A LOINC mass code with a molar unit (magnesium 19123-9 in mmol/L): the unit decides, as a
  careful clinician reads it (a magnesium of 1.0 that the laboratory itself ranges 0.7-1.05 is
  mmol/L; read as mg/dL it would be a severe hypomagnesaemia no one measured), and the
  interpretation notes the mismatch (``loinc_unit_mismatch``).
* Whole-blood potassium (6298-4, blood-gas analysers) is judged as potassium: the ruleset lists
  it, and a potassium of 7.0 must not go unflagged for the tube it came in.
* Resources the panel does not read that fail R4B validation (an R5 element in a Specimen)
  are skipped with a warning; a Patient, Observation or DiagnosticReport that fails is an
  error (reading and validating: fhir_document.py).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.specimen import Specimen
from sqlalchemy import Engine

from labinterp.domain import Ruleset
from labinterp.interop.fhir_document import (
    FhirDocument,
    FhirRefused,
    Issue,
    Located,
    parse_document,
    read_document,
)
from labinterp.interop.intake import (
    Translated,
    clinic_time_zone,
    in_clinic_time,
    source_of,
    submit_translated,
)
from labinterp.models import SourceFormat
from labinterp.services.audit import Actor
from labinterp.services.importing import Candidate
from labinterp.services.panels import ClinicRef

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V3_INTERPRETATION = (
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
    "http://hl7.org/fhir/v3/ObservationInterpretation",
    "http://hl7.org/fhir/v2/0078",
    "http://terminology.hl7.org/CodeSystem/v2-0078",
)
# a birth date before this year is a placeholder for "unknown" (0001-01-01 is common), not a
# patient older than anyone has lived
PLACEHOLDER_BIRTH_YEAR = 1900
# statuses with no result to judge
NO_RESULT_STATUSES = ("registered", "cancelled", "entered-in-error")
# specimens that are not blood, serum or plasma, by word (English, Dutch, French) or code
# (HL7 v2 0487, SNOMED CT); only these make a result of ours "not interpreted": a tube named by
# its colour or additive ("Heparine (groen)") is plasma, and the LOINC code says serum/plasma
_OTHER_WORDS = (
    "urine",
    "urin",
    "csf",
    "liquor",
    "lumba",
    "cerebrospin",
    "spinal",
    "saliva",
    "speeksel",
    "salive",
    "stool",
    "feces",
    "faeces",
    "selles",
    "sweat",
    "zweet",
    "marrow",
    "beenmerg",
    "pleura",
    "ascit",
    "synovi",
    "dialys",
    "sputum",
    "semen",
    "sperm",
)
_OTHER_CODES = frozenset(
    {"UR", "URINE", "URNS", "CSF", "SAL", "STL", "FEC", "SWT", "PLR", "SPT", "MAR", "BON",
     "SNV", "DIAF", "ASP", "122575003", "258450006", "119342007", "119339001", "119359002",
     "418564007", "258455001", "119332006"}
)  # fmt: skip
# LOINC codes that look like an analyte of ours and are not (the ruleset's refused codes
# come first; these are the lookalikes of FHIR lab reports the ruleset does not list)
LOOKALIKES = {
    "2862-1": "albumin measured by serum protein electrophoresis (a fraction of total "
    "protein), not the serum albumin assay the albumin rules are for",
    "13980-8": "albumin as a percentage of total protein (electrophoresis), not an albumin "
    "concentration",
    "1754-1": "urine albumin, not serum albumin",
    "14959-1": "urine albumin (microalbumin), not serum albumin",
}


@dataclass(frozen=True)
class FhirPanel:
    """A Bundle translated: the panel to submit, and the warnings met on the way."""

    translated: Translated
    warnings: list[Issue] = field(default_factory=list)


# --- translating ------------------------------------------------------------------------------


@dataclass
class _Panel:
    document: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    not_interpreted: list[dict[str, str]] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    times: list[tuple[str, Any]] = field(default_factory=list)  # (path, effective) of results


def translate(text: str | bytes, ruleset: Ruleset, time_zone: str = "UTC") -> FhirPanel:
    """The panel a FHIR document holds, ready for intake.submit_translated. FhirRefused when
    it holds none: 400 for what is not a FHIR Bundle, 422 naming each problem."""
    source = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    document = read_document(parse_document(text))
    panel = _Panel()
    reports = document.of_type("DiagnosticReport")
    if len(reports) > 1:
        raise FhirRefused(
            422,
            [
                Issue(r.path, "one DiagnosticReport per Bundle: each is a panel of its own")
                for r in reports
            ],
        )
    report = reports[0] if reports else None
    observations = _observations(document, report, panel)
    results = panel.document.setdefault("results", [])
    for located, parent in observations:
        _add_observation(document, located, parent, ruleset, panel)
    if report is not None:
        _report_fields(document, report, panel)
    else:
        _bundle_fields(document, panel)
    _patient_fields(document, report, [o for o, _ in observations], panel, document.warnings)
    if "collected_at" not in panel.document:
        _collected_from_observations(panel, time_zone)
    elif panel.document["collected_at"] is None:
        del panel.document["collected_at"]
    else:
        panel.document["collected_at"] = _moment_text(panel.document["collected_at"], time_zone)
    if not results and not panel.errors:
        where = f"{report.path}.result" if report is not None else document.root
        panel.errors.append(
            Issue(
                where,
                "no Observation here is a serum or plasma result of an analyte labinterp "
                "judges (a LOINC code of the ruleset with a valueQuantity)"
                + (
                    "; not interpreted: "
                    + "; ".join(
                        f"{n['path']} {n['code']}: {n['reason']}" for n in panel.not_interpreted
                    )
                    if panel.not_interpreted
                    else ""
                ),
                code="not-found",
            )
        )
    if panel.errors:
        accession = panel.document.get("accession")
        raise FhirRefused(422, panel.errors + document.warnings, accession)
    return FhirPanel(
        Translated(
            document=panel.document,
            paths=panel.paths,
            not_interpreted=panel.not_interpreted,
            source_format=SourceFormat.FHIR.value,
            source_text=source,
        ),
        warnings=document.warnings,
    )


def _observations(
    document: FhirDocument, report: Located | None, panel: _Panel
) -> list[tuple[Located, Located | None]]:
    """The report's Observations (each with the panel Observation it is a member of), members
    followed; the DiagnosticReport's references that the document does not hold are errors."""
    found: list[tuple[Located, Located | None]] = []
    seen: set[int] = set()

    def visit(located: Located, parent: Located | None) -> None:
        if id(located.resource) in seen:
            return
        seen.add(id(located.resource))
        members = located.resource.hasMember or []
        for index, member in enumerate(members):
            target = document.resolve(member.reference, located)
            where = f"{located.path}.hasMember[{index}]"
            if target is None:
                panel.errors.append(_missing(where, member.reference, "Observation"))
            elif target.resource.get_resource_type() == "Observation":
                visit(target, located)
        if not members or located.resource.valueQuantity is not None:
            found.append((located, parent))

    if report is not None:
        for index, reference in enumerate(report.resource.result or []):
            target = document.resolve(reference.reference, report)
            where = f"{report.path}.result[{index}]"
            if target is None:
                panel.errors.append(_missing(where, reference.reference, "Observation"))
            elif target.resource.get_resource_type() != "Observation":
                panel.errors.append(Issue(where, f"{reference.reference} is not an Observation"))
            else:
                visit(target, None)
        for located in document.of_type("Observation"):
            if id(located.resource) not in seen and located.parent is None:
                seen.add(id(located.resource))
                panel.not_interpreted.append(
                    _kept(located, "not among the DiagnosticReport's results")
                )
        return found
    members = {
        id(t.resource)
        for o in document.of_type("Observation")
        for m in o.resource.hasMember or []
        if (t := document.resolve(m.reference, o)) is not None
    }
    for located in document.of_type("Observation"):
        if id(located.resource) not in members and located.parent is None:
            visit(located, None)
    return found


def _missing(where: str, reference: str | None, kind: str) -> Issue:
    return Issue(
        where,
        f"{reference or '(no reference)'} is not in this document: send the {kind} in the same "
        f"Bundle (an entry whose fullUrl or {kind}/id matches) or contained in the resource "
        "that references it",
        code="not-found",
    )


def _code_of(observation: Observation) -> tuple[int | None, str | None, str]:
    """(index of the LOINC coding, its code, a display) of an Observation's code."""
    concept = observation.code
    display = concept.text or ""
    for index, coding in enumerate(concept.coding or []):
        if coding.system == LOINC and coding.code:
            return index, coding.code.strip(), coding.display or display
    codes = [f"{c.system or '?'}|{c.code}" for c in concept.coding or [] if c.code]
    first = next((c.display for c in concept.coding or [] if c.display), None)
    return None, ", ".join(codes) or None, first or display


def _kept(located: Located, reason: str) -> dict[str, str]:
    _, code, display = _code_of(located.resource)
    return {"path": located.path, "code": code or "", "display": display, "reason": reason}


def _specimen_word(document: FhirDocument, located: Located) -> str | None:
    """What the Observation's specimen is, when it is clearly not blood, serum or plasma (a
    urine sample): its words; None otherwise, or when it cannot be told."""
    reference = located.resource.specimen
    if reference is None:
        return None
    target = document.resolve(reference.reference, located)
    if target is None or not isinstance(target.resource, Specimen):
        return None
    kind = target.resource.type
    if kind is None:
        return None
    words = [kind.text or ""] + [c.display or "" for c in kind.coding or []]
    codes = {(c.code or "").upper() for c in kind.coding or []}
    text = " ".join(words).lower()
    if not (codes & _OTHER_CODES or any(w in text for w in _OTHER_WORDS)):
        return None
    return next((w for w in words if w), None) or ", ".join(sorted(codes))


def _not_judged_reason(
    document: FhirDocument, located: Located, code: str | None, ruleset: Ruleset
) -> str | None:
    """Why an Observation is not one of our results, or None when it is."""
    observation: Observation = located.resource
    if code is None:
        return "no LOINC code (http://loinc.org): labinterp knows its analytes by LOINC"
    refused = ruleset.refused_loinc.get(code)
    if refused is not None:
        return f"{refused.reason} (LOINC {code}), refused by ruleset {ruleset.version}"
    if code in LOOKALIKES:
        return LOOKALIKES[code]
    known = ruleset.loinc_index.get(code)
    if known is None:
        return f"LOINC {code} is not an analyte ruleset {ruleset.version} judges"
    specimen = _specimen_word(document, located)
    if specimen is not None:
        return f"{known.analyte}: specimen is {specimen!r}, not serum or plasma"
    status = observation.status
    quantity = observation.valueQuantity
    if status in NO_RESULT_STATUSES:
        return f"status {status!r}: no result to judge yet" + (
            " (a reference range but no value)" if observation.referenceRange else ""
        )
    if quantity is None or quantity.value is None:
        if observation.valueString is not None:
            return (
                f"{known.analyte}: value is text {observation.valueString[:40]!r}, not a quantity"
            )
        if observation.dataAbsentReason is not None:
            why = observation.dataAbsentReason.text or next(
                (c.code for c in observation.dataAbsentReason.coding or [] if c.code), "absent"
            )
            return f"{known.analyte}: no value ({why})"
        if observation.referenceRange:
            return f"{known.analyte}: a reference range but no value"
        return f"{known.analyte}: no valueQuantity"
    if quantity.comparator:
        return (
            f"{known.analyte}: censored value {quantity.comparator}{quantity.value} "
            "(kept as sent, never guessed)"
        )
    return None


def _unit_of(quantity: Any) -> tuple[str | None, str]:
    """The unit (a UCUM ``code``, else ``unit``) and the element it came from."""
    if quantity.code and (quantity.system is None or quantity.system == UCUM):
        return quantity.code, "code"
    if quantity.unit:
        return quantity.unit, "unit"
    if quantity.code:
        return None, "code"  # a code of another system (SNOMED CT, say): not a unit we read
    return None, "unit"


def _add_observation(
    document: FhirDocument,
    located: Located,
    parent: Located | None,
    ruleset: Ruleset,
    panel: _Panel,
) -> None:
    observation: Observation = located.resource
    coding_index, code, display = _code_of(observation)
    loinc = code if coding_index is not None else None
    reason = _not_judged_reason(document, located, loinc, ruleset)
    if reason is not None:
        panel.not_interpreted.append(_kept(located, reason))
        return
    results = panel.document["results"]
    n, path = len(results), located.path
    quantity = observation.valueQuantity
    assert quantity is not None  # noqa: S101 - _not_judged_reason refuses one without
    unit, unit_element = _unit_of(quantity)
    result: dict[str, Any] = {"loinc": code, "value": quantity.value, "unit": unit}
    panel.paths.update(
        {
            f"results.{n}": path,
            f"results.{n}.loinc": f"{path}.code.coding[{coding_index}].code",
            f"results.{n}.analyte": f"{path}.code",
            f"results.{n}.value": f"{path}.valueQuantity.value",
            f"results.{n}.unit": f"{path}.valueQuantity.{unit_element}",
        }
    )
    ranges = observation.referenceRange or []
    if ranges:
        rr = ranges[0]
        where = f"{path}.referenceRange[0]"
        low = rr.low.value if rr.low is not None else None
        high = rr.high.value if rr.high is not None else None
        limit = rr.low if rr.low is not None and rr.low.value is not None else rr.high
        range_unit, range_element = _unit_of(limit) if limit is not None else (None, "code")
        limit_name = "low" if limit is rr.low else "high"
        if low is None and high is None and rr.text:
            panel.not_interpreted.append(
                {
                    "path": f"{where}.text",
                    "code": code or "",
                    "display": display,
                    "reason": f"a reference range given only as text ({rr.text[:80]!r}): kept "
                    "with the result, not used; the ruleset's interval judges the value",
                }
            )
        if low is not None or high is not None or rr.text:
            result["reference_range"] = {
                "low": low,
                "high": high,
                "text": rr.text,
                "unit": range_unit,
            }
            panel.paths.update(
                {
                    f"results.{n}.reference_range": where,
                    f"results.{n}.reference_range.low": f"{where}.low.value",
                    f"results.{n}.reference_range.high": f"{where}.high.value",
                    f"results.{n}.reference_range.text": f"{where}.text",
                    f"results.{n}.reference_range.unit": f"{where}.{limit_name}.{range_element}",
                }
            )
    flag = _sender_flag(observation)
    if flag is not None:
        result["sender_flag"] = flag
        panel.paths[f"results.{n}.sender_flag"] = f"{path}.interpretation[0]"
    results.append(result)
    effective = observation.effectiveDateTime
    where = f"{path}.effectiveDateTime"
    if effective is None and parent is not None:
        effective, where = parent.resource.effectiveDateTime, f"{parent.path}.effectiveDateTime"
    if effective is not None:
        panel.times.append((where, effective))


def _sender_flag(observation: Observation) -> str | None:
    """The sender's flag: a v3 ObservationInterpretation (or v2 0078) code, else the first
    code, else the text (at most 20 characters, as the panel keeps it)."""
    for concept in observation.interpretation or []:
        codings = concept.coding or []
        chosen = next((c.code for c in codings if c.system in V3_INTERPRETATION and c.code), None)
        chosen = chosen or next((c.code for c in codings if c.code), None) or concept.text
        if chosen:
            return str(chosen).strip()[:20]
    return None


def _report_fields(document: FhirDocument, report: Located, panel: _Panel) -> None:
    resource: DiagnosticReport = report.resource
    identifiers = [i for i in resource.identifier or [] if i.value]
    if identifiers:
        panel.document["accession"] = identifiers[0].value
        index = (resource.identifier or []).index(identifiers[0])
        panel.paths["accession"] = f"{report.path}.identifier[{index}].value"
    else:
        _bundle_fields(document, panel, report)
    if resource.effectiveDateTime is not None:
        panel.document["collected_at"] = resource.effectiveDateTime
        panel.paths["collected_at"] = f"{report.path}.effectiveDateTime"
    panel.paths["results"] = f"{report.path}.result"


def _bundle_fields(document: FhirDocument, panel: _Panel, report: Located | None = None) -> None:
    identifier = document.bundle.identifier if document.bundle is not None else None
    if identifier is not None and identifier.value:
        panel.document["accession"] = identifier.value
        panel.paths["accession"] = "Bundle.identifier.value"
        return
    where = f"{report.path}.identifier" if report is not None else f"{document.root}.identifier"
    if document.bundle is None and report is None:
        detail = (
            f"a lone {document.root} has no accession: post it in a Bundle with an identifier "
            "(Bundle.identifier.value), or in a DiagnosticReport with one, and its Patient"
        )
    else:
        detail = (
            "no accession: neither DiagnosticReport.identifier[0].value nor "
            "Bundle.identifier.value is given"
        )
    panel.errors.append(Issue(where, detail, code="required"))


def _logical_id(reference: str, kind: str) -> str | None:
    """The id a reference names, when it names a resource of ``kind`` (``Patient/123`` or an
    absolute URL ending so); None for anything else."""
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == kind and parts[-1]:
        return parts[-1]
    return None


def _patient_fields(
    document: FhirDocument,
    report: Located | None,
    observations: list[Located],
    panel: _Panel,
    warnings: list[Issue],
) -> None:
    holders = [report] if report is not None else observations
    subjects = [(h, h.resource.subject) for h in holders if h.resource.subject is not None]
    patients: dict[int, Located] = {}
    logical: list[tuple[str, str]] = []
    for holder, subject in subjects:
        target = document.resolve(subject.reference, holder)
        if target is not None and isinstance(target.resource, Patient):
            patients[id(target.resource)] = target
        elif subject.identifier is not None and subject.identifier.value:
            logical.append((f"{holder.path}.subject.identifier.value", subject.identifier.value))
        elif subject.reference and _logical_id(subject.reference, "Patient"):
            logical.append((f"{holder.path}.subject.reference", subject.reference))
    if not patients and not logical:
        everyone = document.of_type("Patient")
        if len(everyone) == 1:
            patients[id(everyone[0].resource)] = everyone[0]
    if len(patients) + len({v for _, v in logical}) > 1:
        panel.errors.append(
            Issue(
                f"{report.path}.subject" if report is not None else document.root,
                "the Observations are of more than one patient: one panel is one patient's",
            )
        )
        return
    if logical and not patients:
        where, value = logical[0]
        if where.endswith(".reference"):
            value = _logical_id(value, "Patient") or value
            warnings.append(
                Issue(
                    where,
                    f"the Patient is not in this document: patient id {value!r} is taken from "
                    "the reference; sex and birth date unknown (include the Patient for "
                    "sex- and age-specific ranges)",
                    "warning",
                    "incomplete",
                )
            )
        panel.document["patient"] = {"id": value}
        panel.paths["patient.id"] = where
        return
    if not patients:
        panel.errors.append(
            Issue(
                f"{document.root}",
                "no Patient: include the Patient resource (its identifier is the patient's id)",
                code="required",
            )
        )
        return
    located = next(iter(patients.values()))
    patient: Patient = located.resource
    identifiers = [i for i in patient.identifier or [] if i.value]
    if identifiers:
        index = (patient.identifier or []).index(identifiers[0])
        document_patient: dict[str, Any] = {"id": identifiers[0].value}
        panel.paths["patient.id"] = f"{located.path}.identifier[{index}].value"
    else:
        document_patient = {"id": patient.id}
        panel.paths["patient.id"] = f"{located.path}.id"
    document_patient["sex"] = patient.gender if patient.gender in ("female", "male") else "unknown"
    panel.paths["patient.sex"] = f"{located.path}.gender"
    born = patient.birthDate
    if isinstance(born, dt.date) and born.year < PLACEHOLDER_BIRTH_YEAR:
        panel.not_interpreted.append(
            {
                "path": f"{located.path}.birthDate",
                "code": "",
                "display": born.isoformat(),
                "reason": f"birth date {born.isoformat()} is a placeholder (before "
                f"{PLACEHOLDER_BIRTH_YEAR}): read as unknown, so age-specific ranges are not "
                "chosen",
            }
        )
    elif born is not None:
        document_patient["birth_date"] = _date_text(born)
        panel.paths["patient.birth_date"] = f"{located.path}.birthDate"
    panel.document["patient"] = document_patient
    panel.paths["patient"] = located.path


def _date_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _moment_text(value: Any, time_zone: str) -> Any:
    """A FHIR dateTime as the panel's ISO text; a date alone is passed on as it is (the
    panel's schema words the error: it needs a time of day)."""
    if isinstance(value, dt.datetime):
        return in_clinic_time(value, time_zone).isoformat()
    return _date_text(value)


def _collected_from_observations(panel: _Panel, time_zone: str) -> None:
    """collected_at from the judged Observations' effectiveDateTime: all equal, or an error."""
    distinct: dict[Any, tuple[str, Any]] = {}
    for path, value in panel.times:
        instant = value.astimezone(dt.UTC) if isinstance(value, dt.datetime) else value
        distinct.setdefault(instant, (path, value))
    if len(distinct) > 1:
        shown = [_date_text(value) for _, value in list(distinct.values())[:4]]
        panel.errors.append(
            Issue(
                panel.times[0][0],
                f"the Observations were collected at different times ({', '.join(shown)}): "
                "one panel is one collection; send a DiagnosticReport with an "
                "effectiveDateTime, or one Bundle per collection",
            )
        )
        return
    if not distinct:
        if panel.document.get("results"):
            panel.errors.append(
                Issue(
                    "Observation.effectiveDateTime",
                    "no collection time: neither DiagnosticReport.effectiveDateTime nor "
                    "Observation.effectiveDateTime is given",
                    code="required",
                )
            )
        return
    path, value = next(iter(distinct.values()))
    panel.document["collected_at"] = _moment_text(value, time_zone)
    panel.paths["collected_at"] = path


# --- submitting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleSubmitted:
    """A Bundle taken as a panel: which panel, whether new, and what was kept but not judged."""

    panel_id: uuid.UUID
    created: bool
    accession: str
    not_interpreted: list[dict[str, str]]
    warnings: list[Issue]


def submit_bundle(
    engine: Engine,
    actor: Actor,
    clinic: ClinicRef,
    body: str | bytes,
    ruleset: Ruleset,
    now: dt.datetime,
) -> BundleSubmitted:
    """A FHIR document as a new accession (intake.submit_translated: one durable write,
    idempotent on the clinic's accession and the content). FhirRefused when it holds no
    panel; InvalidInput naming FHIRPaths when the panel is refused; AccessionConflict."""
    fhir_panel = translate(body, ruleset, clinic_time_zone(engine, clinic.id))
    translated = fhir_panel.translated
    submitted = submit_translated(engine, actor, clinic, translated, ruleset, now)
    return BundleSubmitted(
        panel_id=submitted.panel_id,
        created=submitted.created,
        accession=str(translated.document["accession"]),
        not_interpreted=translated.not_interpreted,
        warnings=fhir_panel.warnings,
    )


# --- FHIR NDJSON (labinterp import) ------------------------------------------------------------


def ndjson_panels(
    lines: Iterable[tuple[int, str]], ruleset: Ruleset, time_zone: str = "UTC"
) -> Iterator[tuple[Candidate, int]]:
    """Each line of a FHIR NDJSON file (one Bundle per line) as an import candidate: the
    panel it holds, its errors in FHIRPaths, and what it was (stored beside the revision).
    A generator: one line at a time."""
    for number, text in lines:
        try:
            fhir_panel = translate(text, ruleset, time_zone)
        except FhirRefused as exc:
            candidate = Candidate(exc.accession or "", number, {"results": []})
            candidate.problems = [
                (number, issue.expression, issue.diagnostics)
                for issue in exc.issues
                if issue.severity == "error"
            ]
            yield candidate, 1
            continue
        translated = fhir_panel.translated
        results = translated.document.get("results", [])
        yield (
            Candidate(
                accession=str(translated.document.get("accession", "")),
                line=number,
                document=translated.document,
                result_lines=[number] * len(results),
                paths=translated.paths,
                source=source_of(translated),
            ),
            1,
        )
