"""A panel and its interpretation as a FHIR R4 DiagnosticReport (pure: view -> resource).

The report contains one Observation per result and is validated with ``fhir.resources``
(R4B, which reads and writes R4 JSON for these resources) before it leaves. What goes where:

* ``DiagnosticReport.status``: ``registered`` while the panel waits for its interpretation,
  ``final`` once interpreted (``preliminary`` when the panel is being interpreted again over
  an interpretation it already has), ``cancelled`` when interpretation failed.
* ``Observation.valueQuantity``: the canonical value, UCUM-coded. The value and unit as the
  laboratory reported them: the extension :data:`REPORTED_QUANTITY` (a ``valueQuantity``, its
  ``unit`` verbatim, UCUM-coded where the unit is UCUM).
* ``Observation.interpretation``: ours, a v3 ObservationInterpretation code (``L``, ``LL``,
  ``H``, ``HH``, ``N``; ``IND`` where the result could not be judged). The sender's own flag,
  when it sent one, is kept beside ours in the extension :data:`SENDER_INTERPRETATION`, never
  as a second coding of ours.
* ``Observation.referenceRange``: the interval that judged the result (the laboratory's, in
  the reported unit, or the ruleset's, in the canonical unit); ``text`` says which.
* ``DiagnosticReport.conclusion``: the interpretation's summary; ``conclusionCode``: one per
  finding (system :data:`FINDING_SYSTEM`) and one per red flag (:data:`RED_FLAG_SYSTEM`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from labinterp import __version__
from labinterp.services.reading import InterpretationView, PanelView, ResultView
from labinterp.ucum import UCUM_SYSTEM, ucum_code

LOINC_SYSTEM = "http://loinc.org"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
REFERENCE_RANGE_MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
# labinterp's own code systems and extensions (documented in the README, "FHIR out")
FINDING_SYSTEM = "urn:labinterp:fhir:CodeSystem:finding"
RED_FLAG_SYSTEM = "urn:labinterp:fhir:CodeSystem:red-flag"
ANALYTE_SYSTEM = "urn:labinterp:fhir:CodeSystem:analyte"
PANEL_SYSTEM = "urn:labinterp:fhir:panel"
REPORTED_QUANTITY = "urn:labinterp:fhir:StructureDefinition:reported-quantity"
SENDER_INTERPRETATION = "urn:labinterp:fhir:StructureDefinition:sender-interpretation"
PRIORITY = "urn:labinterp:fhir:StructureDefinition:priority"
FHIR_JSON = "application/fhir+json"

INTERPRETATION_DISPLAY = {
    "N": "Normal",
    "L": "Low",
    "LL": "Critical low",
    "H": "High",
    "HH": "Critical high",
    "IND": "Indeterminate",
}
RANGE_TEXT = {
    "lab": "the performing laboratory's reference range",
    "ruleset": "labinterp ruleset {ruleset} reference interval",
}


def report_status(view: PanelView) -> str:
    if view.status == "failed":
        return "cancelled"
    if view.interpretation is None:
        return "registered"
    if view.status == "interpreted":
        return "final"
    return "preliminary"


def _instant(moment: dt.datetime) -> str:
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    return moment.isoformat()


def _number(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _quantity(value: Any, unit: str) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": _number(value), "unit": unit}
    code = ucum_code(unit)
    if code is not None:
        quantity.update(system=UCUM_SYSTEM, code=code)
    return quantity


def _reference_range(
    judged: Mapping[str, Any] | None, result: ResultView, ruleset: str | None
) -> list[dict[str, Any]]:
    """The interval that judged the result; before judging, the laboratory's own if sent."""
    if judged is not None and judged.get("reference_range"):
        used = judged["reference_range"]
        low, high, unit, source = used.get("low"), used.get("high"), used["unit"], used["source"]
    elif judged is None and result.reference_range is not None:
        lab = result.reference_range
        low, high, unit, source = lab.low, lab.high, lab.unit, "lab"
        if low is None and high is None:
            return [{"text": f"{RANGE_TEXT['lab']}: {lab.text}"}] if lab.text else []
    else:
        return []
    entry: dict[str, Any] = {}
    if low is not None:
        entry["low"] = _quantity(low, unit)
    if high is not None:
        entry["high"] = _quantity(high, unit)
    entry["type"] = {
        "coding": [{"system": REFERENCE_RANGE_MEANING, "code": "normal", "display": "Normal"}]
    }
    entry["text"] = RANGE_TEXT.get(source, source).format(ruleset=ruleset or "")
    return [entry]


def _code(result: ResultView, loinc_of: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    coding: list[dict[str, Any]] = []
    if result.loinc:
        coding.append({"system": LOINC_SYSTEM, "code": result.loinc})
    elif result.analyte in loinc_of:
        code, display = loinc_of[result.analyte]
        coding.append({"system": LOINC_SYSTEM, "code": code, "display": display})
    coding.append({"system": ANALYTE_SYSTEM, "code": result.analyte})
    return {"coding": coding, "text": result.analyte.replace("_", " ")}


def _interpretation(code: str) -> dict[str, Any]:
    return {
        "coding": [
            {"system": V3_INTERPRETATION, "code": code, "display": INTERPRETATION_DISPLAY[code]}
        ],
        "text": INTERPRETATION_DISPLAY[code],
    }


def _sender_flag(flag: str) -> dict[str, Any]:
    """The sender's flag verbatim; coded as v3 when it is one of its codes (HL7 v2 table 0078
    shares them)."""
    concept: dict[str, Any] = {"text": flag}
    code = flag.strip()
    if code in INTERPRETATION_DISPLAY or code in ("A", "AA"):
        concept["coding"] = [{"system": V3_INTERPRETATION, "code": code}]
    return {"url": SENDER_INTERPRETATION, "valueCodeableConcept": concept}


def _observation(
    n: int,
    result: ResultView,
    judged: Mapping[str, Any] | None,
    view: PanelView,
    common: Mapping[str, Any],
    loinc_of: Mapping[str, tuple[str, str]],
) -> dict[str, Any]:
    interpretation = view.interpretation
    extensions = [{"url": REPORTED_QUANTITY, "valueQuantity": _quantity(*_reported(result))}]
    if result.sender_flag:  # the sending laboratory's own flag (FHIR, HL7 OBX-8, JSON)
        extensions.append(_sender_flag(result.sender_flag))
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"result-{n}",
        "extension": extensions,
        "status": common["status"],
        "category": [
            {
                "coding": [
                    {"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}
                ]
            }
        ],
        "code": _code(result, loinc_of),
        "subject": common["subject"],
        "effectiveDateTime": common["effective"],
        "issued": common["issued"],
        "valueQuantity": _quantity(result.value, result.unit),
    }
    flag = (judged or {}).get("interpretation")
    if flag in INTERPRETATION_DISPLAY:
        observation["interpretation"] = [_interpretation(flag)]
    elif interpretation is not None:  # judged panel, result without a usable judgement
        observation["interpretation"] = [_interpretation("IND")]
    ranges = _reference_range(judged, result, interpretation.ruleset if interpretation else None)
    if ranges:
        observation["referenceRange"] = ranges
    return observation


def _reported(result: ResultView) -> tuple[Decimal, str]:
    return result.reported.value, result.reported.unit


def _conclusion_codes(interpretation: InterpretationView) -> list[dict[str, Any]]:
    codes = [
        {
            "coding": [{"system": FINDING_SYSTEM, "code": f["code"]}],
            "text": f.get("explanation") or f["code"],
        }
        for f in interpretation.findings
    ]
    codes += [
        {
            "coding": [{"system": RED_FLAG_SYSTEM, "code": r["code"]}],
            "text": r.get("detail") or r["code"],
        }
        for r in interpretation.red_flags
    ]
    return codes


def diagnostic_report(view: PanelView, loinc_of: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """The panel as a DiagnosticReport (a dict of FHIR JSON, numbers as Decimal).

    ``loinc_of``: analyte key -> (LOINC code, name) for results sent without a LOINC code.
    ``effectiveDateTime`` is the collection time with the UTC offset it was sent with.
    """
    interpretation = view.interpretation
    sent_offset = dt.timezone(dt.timedelta(minutes=view.collected_utc_offset))
    collected = view.collected_at.astimezone(sent_offset)
    issued = interpretation.created_at if interpretation is not None else view.updated_at
    subject = {
        "identifier": {"value": view.patient.id, "assigner": {"display": view.clinic}},
        "display": f"patient {view.patient.id} of clinic {view.clinic}",
    }
    common = {
        "status": report_status(view),
        "subject": subject,
        "effective": _instant(collected),
        "issued": _instant(issued),
    }
    judged_by_analyte = {
        r.get("analyte"): r for r in (interpretation.results if interpretation else [])
    }
    observations = [
        _observation(n, r, judged_by_analyte.get(r.analyte), view, common, loinc_of)
        for n, r in enumerate(view.results)
    ]
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": str(view.id),
        "meta": {"source": f"labinterp/{__version__}"},
        "contained": observations,
        "identifier": [
            {"system": PANEL_SYSTEM, "value": str(view.id)},
            {
                "use": "official",
                "type": {"text": "accession"},
                "value": view.accession,
                "assigner": {"display": view.clinic},
            },
        ],
        "status": common["status"],
        "category": [
            {"coding": [{"system": V2_0074, "code": "CH", "display": "Chemistry"}]},
        ],
        "code": {
            "coding": [{"system": LOINC_SYSTEM, "code": "11502-2", "display": "Laboratory report"}],
            "text": "labinterp interpretation of a laboratory panel",
        },
        "subject": subject,
        "effectiveDateTime": common["effective"],
        "issued": common["issued"],
        "result": [{"reference": f"#{o['id']}"} for o in observations],
    }
    if interpretation is not None:
        report["extension"] = [{"url": PRIORITY, "valueCode": interpretation.priority.value}]
        report["conclusion"] = interpretation.summary
        codes = _conclusion_codes(interpretation)
        if codes:
            report["conclusionCode"] = codes
    return report


def validated(resource: dict[str, Any]) -> str:
    """The resource validated with fhir.resources (R4B) and written as FHIR JSON."""
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return str(model.model_dump_json(exclude_none=True))


def operation_outcome(status: int, detail: str, code: str) -> dict[str, Any]:
    """An error as an OperationOutcome (``code`` from the FHIR issue-type value set)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error" if status < 500 else "fatal",
                "code": code,
                "diagnostics": detail,
            }
        ],
    }


def capability_statement(base_url: str, now: dt.datetime) -> dict[str, Any]:
    """What this server does in FHIR: read DiagnosticReport (with contained Observations),
    take Bundles (POST /fhir/r4/Bundle)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _instant(now),
        "publisher": "labinterp",
        "kind": "instance",
        "software": {"name": "labinterp", "version": __version__},
        "implementation": {
            "description": "labinterp: lab-result interpretation",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "A bearer token from `labinterp tokens create` "
                    "(Authorization: Bearer …). A clinic reads its own panels; a clinician "
                    "those of the clinics it is assigned to; anything else is 404.",
                },
                "resource": [
                    {
                        "type": "DiagnosticReport",
                        "interaction": [{"code": "read"}],
                        "documentation": "One panel's interpretation; its Observations are "
                        "contained.",
                    },
                    {
                        "type": "Bundle",
                        "interaction": [{"code": "create"}],
                        "documentation": "A collection, transaction or batch Bundle of a "
                        "Patient and LOINC-coded Observations, ingested as one panel.",
                    },
                ],
            }
        ],
    }
