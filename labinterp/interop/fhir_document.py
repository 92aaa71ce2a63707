"""Reading a FHIR R4 document with fhir.resources (R4B models): a Bundle, or a lone
DiagnosticReport or Observation, validated entry by entry, its resources found by where they
are (a FHIRPath) and by how they are referenced (full URL, Type/id, ``#id`` for contained ones).

Problems are OperationOutcome issues: FhirRefused(400) for what is not a FHIR Bundle at all,
FhirRefused(422) naming the FHIRPath of each element that is not valid R4. A resource the
panel does not read (a Specimen, a Practitioner …) that fails validation is skipped with a
warning instead: one R5 element in a Specimen does not cost a clinic its potassium.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from labinterp import jsontext

BUNDLE_TYPES = ("collection", "transaction", "batch", "document")
# the resources the panel is read from: one that fails validation is an error, not skipped
READ = ("Patient", "Observation", "DiagnosticReport")


@dataclass(frozen=True)
class Issue:
    """One problem, as an OperationOutcome issue: where (a FHIRPath) and what."""

    expression: str
    diagnostics: str
    severity: str = "error"  # error, warning, information
    code: str = "invalid"  # the FHIR IssueType

    def to_fhir(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
            "expression": [self.expression],
        }


class FhirRefused(Exception):
    """The document cannot become a panel: 400 (not a FHIR Bundle at all) or 422."""

    def __init__(self, status: int, issues: list[Issue], accession: str | None = None):
        super().__init__("; ".join(f"{i.expression}: {i.diagnostics}" for i in issues))
        self.status = status
        self.issues = issues
        self.accession = accession  # when the document named one


def outcome(issues: list[Issue]) -> dict[str, Any]:
    """An R4 OperationOutcome of ``issues``."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


@dataclass
class Located:
    """A validated resource and its FHIRPath in the document."""

    resource: Any
    path: str
    full_url: str | None = None
    parent: Located | None = None  # the resource that contains it


def parse_document(text: str | bytes) -> Any:
    """The JSON document, numbers as exact decimals; FhirRefused(400) if it is not JSON."""
    try:
        return jsontext.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FhirRefused(
            400, [Issue("Bundle", f"the body is not valid JSON: {exc}", code="structure")]
        ) from None


def _fhirpath(root: str, loc: tuple[Any, ...]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).endswith("__ext"):
            path += "." + str(part)[: -len("__ext")]
        else:
            path += f".{part}"
    return path


def _validation_issues(root: str, exc: ValidationError, severity: str = "error") -> list[Issue]:
    issues = []
    for error in exc.errors():
        message = str(error.get("msg", "is not valid"))
        given = error.get("input")
        if "DateTime value string does not match" in message and isinstance(given, str):
            message = (
                f"'{given[:40]}' is not a FHIR dateTime: a time of day needs its UTC offset "
                "(e.g. 2026-11-20T08:30:00+01:00)"
            )
        elif error.get("type") == "extra_forbidden":
            message = "is not an element of FHIR R4 here (an R5 element, or misspelt?)"
        issues.append(
            Issue(_fhirpath(root, tuple(error.get("loc", ()))), message, severity, "structure")
        )
    return issues


def _validate(kind: str, data: dict[str, Any], path: str) -> Any:
    try:
        model = get_fhir_model_class(kind)
    except (ValueError, KeyError):
        raise FhirRefused(
            422, [Issue(f"{path}.resourceType", f"{kind!r} is not a FHIR R4 resource type")]
        ) from None
    return model.model_validate(data)


@dataclass
class FhirDocument:
    """The resources of the document, by where they are and by how they are referenced."""

    root: str  # "Bundle", or the lone resource's type
    bundle: Bundle | None
    entries: list[Located] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    by_reference: dict[str, Located] = field(default_factory=dict)

    def index(self, located: Located) -> None:
        self.entries.append(located)
        resource = located.resource
        kind, rid = resource.get_resource_type(), resource.id
        keys = []
        if located.full_url:
            keys.append(located.full_url)
            tail = located.full_url.rstrip("/").split("/")
            if len(tail) >= 2:
                keys.append(f"{tail[-2]}/{tail[-1]}")
        if rid:
            keys.append(f"{kind}/{rid}")
        for key in keys:
            self.by_reference.setdefault(key, located)

    def resolve(self, reference: str | None, holder: Located) -> Located | None:
        """The resource a reference names: ``#id`` among the holder's (or its container's)
        contained resources, else an entry by full URL or Type/id."""
        if not reference:
            return None
        if reference.startswith("#"):
            wanted = reference[1:]
            for scope in (holder, holder.parent):
                if scope is None:
                    continue
                for index, item in enumerate(scope.resource.contained or []):
                    if item.id == wanted:
                        return Located(item, f"{scope.path}.contained[{index}]", parent=scope)
            return None
        reference = reference.split("/_history/")[0]
        found = self.by_reference.get(reference)
        if found is None and "/" in reference:
            parts = reference.rstrip("/").split("/")
            found = self.by_reference.get(f"{parts[-2]}/{parts[-1]}")
        return found

    def of_type(self, kind: str) -> list[Located]:
        return [e for e in self.entries if e.resource.get_resource_type() == kind]


def read_document(data: Any) -> FhirDocument:
    """Validate the document with fhir.resources, entry by entry: a Bundle, a DiagnosticReport
    or an Observation (the last two alone). FhirRefused(400) for anything else."""
    if not isinstance(data, dict):
        raise FhirRefused(
            400,
            [Issue("Bundle", "the body is not a FHIR resource (a JSON object)", code="structure")],
        )
    kind = data.get("resourceType")
    if kind not in ("Bundle", "DiagnosticReport", "Observation"):
        raise FhirRefused(
            400,
            [
                Issue(
                    "resourceType",
                    f"expected a Bundle (collection, transaction, batch or document), got {kind!r}"
                    if kind
                    else "no resourceType: this is not a FHIR resource",
                    code="structure",
                )
            ],
        )
    if kind != "Bundle":
        try:
            resource = _validate(kind, data, kind)
        except ValidationError as exc:
            raise FhirRefused(422, _validation_issues(kind, exc)) from None
        document = FhirDocument(root=kind, bundle=None)
        document.index(Located(resource, kind))
        _index_contained(document, document.entries[0])
        return document
    return _read_bundle(data)


def _read_bundle(data: dict[str, Any]) -> FhirDocument:
    entries = data.get("entry")
    shell = dict(data)
    if isinstance(entries, list):
        shell["entry"] = [
            {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
            for e in entries
        ]
    try:
        bundle = Bundle.model_validate(shell)
    except ValidationError as exc:
        raise FhirRefused(422, _validation_issues("Bundle", exc)) from None
    if bundle.type not in BUNDLE_TYPES:
        raise FhirRefused(
            422,
            [
                Issue(
                    "Bundle.type",
                    f"a {bundle.type!r} Bundle is not taken here; send a collection, "
                    "transaction, batch or document Bundle",
                    code="not-supported",
                )
            ],
        )
    document = FhirDocument(root="Bundle", bundle=bundle)
    errors: list[Issue] = []
    for index, entry in enumerate(entries or []):
        raw = entry.get("resource")
        path = f"Bundle.entry[{index}].resource"
        if raw is None:
            continue
        kind = raw.get("resourceType") if isinstance(raw, dict) else None
        if not isinstance(kind, str):
            errors.append(Issue(f"{path}.resourceType", "is required", code="structure"))
            continue
        try:
            resource = _validate(kind, raw, path)
        except ValidationError as exc:
            if kind in READ:
                errors += _validation_issues(path, exc)
            else:
                problems = _validation_issues(path, exc, severity="warning")
                document.warnings.append(
                    Issue(
                        path,
                        f"{kind} skipped: not valid FHIR R4 ({problems[0].expression}: "
                        f"{problems[0].diagnostics}); the panel does not read it",
                        "warning",
                        "structure",
                    )
                )
            continue
        located = Located(resource, path, full_url=entry.get("fullUrl"))
        document.index(located)
        _index_contained(document, located)
    if errors:
        raise FhirRefused(422, errors)
    return document


def _index_contained(document: FhirDocument, holder: Located) -> None:
    """Contained resources are found by ``#id`` from their holder (resolve); a contained
    Patient or Specimen is reached the same way."""
    for index, item in enumerate(holder.resource.contained or []):
        located = Located(item, f"{holder.path}.contained[{index}]", parent=holder)
        if item.get_resource_type() == "Observation":
            document.entries.append(located)
