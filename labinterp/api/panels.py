"""Panels: clinics post them, everyone entitled reads them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields, validate

from labinterp.api.auth import current_actor, roles
from labinterp.api.fastpost import REFUSED
from labinterp.api.parsing import Blueprint
from labinterp.api.problems import Problem
from labinterp.api.session import db, runtime
from labinterp.domain import Ruleset
from labinterp.domain.ruleset import finding_codes
from labinterp.repositories.panels import FINDING_STATUSES, PANEL_STATUSES, PanelFilter
from labinterp.schemas.common import PageQuery
from labinterp.schemas.fields import Text, UtcDateTime
from labinterp.schemas.output import (
    InterpretationPage,
    PanelOut,
    PanelPage,
    TrendPage,
)
from labinterp.schemas.panels import PanelIn
from labinterp.services import panels as panel_service
from labinterp.services import reading

blp = Blueprint(
    "panels",
    __name__,
    url_prefix="/api/v1",
    description=(
        "Post lab panels with their twitching context; read them and their interpretations."
    ),
)
READERS = ("clinic", "clinician", "admin")


class PanelListQuery(PageQuery):
    class Meta:
        unknown = EXCLUDE

    accession = Text()  # refuses NUL, which no stored accession (nor PostgreSQL text) holds
    patient_id = Text()
    flag = fields.List(
        fields.String(),
        metadata={
            "description": "a finding or red-flag code, or a result flag (L, LL, H, HH, IND); "
            "repeat it for any of several"
        },
    )
    status = fields.String(validate=validate.OneOf(PANEL_STATUSES + FINDING_STATUSES))
    collected_from = UtcDateTime(metadata={"description": "a date alone means its start"})
    collected_to = UtcDateTime(
        end_of_day=True, metadata={"description": "inclusive; a date alone means its end"}
    )


class PanelQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    revision = fields.Integer(
        validate=validate.Range(min=1, max=1_000_000),
        metadata={"description": "an earlier revision"},
    )


class TrendQuery(PageQuery):
    analyte = fields.String(required=True, metadata={"example": "magnesium"})
    clinic = fields.String(
        metadata={"description": "the clinic, where the caller reads several that use this id"}
    )


def _submitted(result: panel_service.Submitted) -> tuple[reading.PanelView, int, dict[str, str]]:
    document = result.document or reading.read_panel(
        db(), current_actor(), runtime().rulesets, result.panel_id, audited=False
    )
    status = 202 if result.created else 200
    return document, status, {"Location": f"/api/v1/panels/{result.panel_id}"}


def page_body(items: list[Any], total: int, query: dict[str, Any]) -> dict[str, Any]:
    """API.md's page body, the same for every list."""
    return {"items": items, "total": total, "page": query["page"], "per_page": query["per_page"]}


def page_of(items: list[Any], query: dict[str, Any]) -> dict[str, Any]:
    """The page the query asks for of a list read whole (a panel's few interpretations)."""
    start = (query["page"] - 1) * query["per_page"]
    return page_body(items[start : start + query["per_page"]], len(items), query)


RESULT_FLAGS = ("L", "LL", "H", "HH", "IND")


def flag_codes(rulesets: Mapping[str, Ruleset]) -> set[str]:
    """Every code ``?flag=`` accepts: result flags, and any ruleset's finding and red-flag codes."""
    known = set(RESULT_FLAGS)
    for ruleset in rulesets.values():
        known |= finding_codes(dict(ruleset.analytes))
        known |= {rule.code for rule in ruleset.red_flags}
    return known


def analyte_keys(rulesets: Mapping[str, Ruleset]) -> list[str]:
    """Every analyte key any ruleset knows, in the order the rulesets list them."""
    return list(dict.fromkeys(key for rs in rulesets.values() for key in rs.analytes))


def known_flags(asked: list[str]) -> tuple[str, ...]:
    """The codes asked for, in the case they are stored in; 422 naming any that no ruleset
    knows (a typo would otherwise list nothing, silently)."""
    known = flag_codes(runtime().rulesets)
    out: list[str] = []
    for code in asked:
        stored = (
            code.strip().upper() if code.strip().upper() in RESULT_FLAGS else code.strip().lower()
        )
        if stored not in known:
            raise Problem(
                422,
                f"unknown flag {code!r}",
                errors={"flag": [f"unknown code {code!r}; known: {', '.join(sorted(known))}"]},
            )
        out.append(stored)
    return tuple(out)


def _clinic_of_poster() -> panel_service.ClinicRef:
    clinic = panel_service.ClinicRef.of_clinic_token(current_actor())
    # roles("clinic") admits only clinic tokens, and a clinic token has exactly one clinic
    # (accounts.create_token): this narrows the type, it decides no access
    assert clinic is not None  # noqa: S101
    return clinic


def _active_ruleset() -> Ruleset:
    return runtime().current_ruleset()


_PANEL_IN = PanelIn()
_POSTERS = ("clinic",)


def _submit(document: dict[str, Any]) -> tuple[reading.PanelView, int, dict[str, str]]:
    """The poster's panel through the service: (view, status, headers). A panel the route in
    front of Flask submitted already is not submitted again: what the service raised for it
    is raised here, for the error handlers to word."""
    refused = request.environ.pop(REFUSED, None)
    if refused is not None:
        raise refused
    result = panel_service.submit_panel(
        runtime().engine,
        current_actor(),
        _clinic_of_poster(),
        document,
        _active_ruleset(),
        dt.datetime.now(dt.UTC),
    )
    return _submitted(result)


@blp.route("/panels")
class Panels(MethodView):
    @roles(*_POSTERS)
    @blp.arguments(_PANEL_IN)
    @blp.response(
        202, PanelOut, description="Accepted: stored durably and queued for interpretation"
    )
    @blp.alt_response(
        200,
        schema=PanelOut,
        description="The same accession with the same content: the existing panel",
    )
    def post(self, document: dict[str, Any]) -> Any:
        """Post a panel (asynchronous interpretation)"""
        # a well-formed panel is answered before Flask, by api/fastpost.py, the same way
        return _submit(document)

    @roles(*READERS)
    @blp.arguments(PanelListQuery, location="query")
    @blp.response(200, PanelPage)
    def get(self, query: dict[str, Any]) -> Any:
        """List the caller's panels"""
        actor = current_actor()
        where = PanelFilter(
            clinic_ids=actor.clinic_ids,
            accession=query.get("accession"),
            patient_id=query.get("patient_id"),
            flags=known_flags(query.get("flag") or []),
            status=query.get("status"),
            collected_from=query.get("collected_from"),
            collected_to=query.get("collected_to"),
        )
        items, total = reading.list_panels(
            db(), actor, runtime().rulesets, where, query["page"], query["per_page"]
        )
        return page_body(items, total, query)


@blp.route("/panels/<uuid:panel_id>")
class PanelById(MethodView):
    @roles(*READERS)
    @blp.arguments(PanelQuery, location="query")
    @blp.response(200, PanelOut)
    def get(self, query: dict[str, Any], panel_id: uuid.UUID) -> Any:
        """Read a panel with its newest interpretation"""
        return reading.read_panel(
            db(), current_actor(), runtime().rulesets, panel_id, query.get("revision")
        )


@blp.route("/panels/<uuid:panel_id>/revisions")
class PanelRevisions(MethodView):
    @roles("clinic")
    @blp.arguments(PanelIn)
    @blp.response(202, PanelOut, description="Corrected results stored as a new revision, queued")
    @blp.alt_response(200, schema=PanelOut, description="The same content as an existing revision")
    def post(self, document: dict[str, Any], panel_id: uuid.UUID) -> Any:
        """Post corrected results for an accession (a new revision)"""
        result = panel_service.revise_panel(
            db(),
            current_actor(),
            panel_id,
            document,
            _active_ruleset(),
            dt.datetime.now(dt.UTC),
        )
        return _submitted(result)


@blp.route("/panels/<uuid:panel_id>/interpretations")
class PanelInterpretations(MethodView):
    @roles(*READERS)
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, InterpretationPage)
    def get(self, query: dict[str, Any], panel_id: uuid.UUID) -> Any:
        """Every interpretation of a panel, newest first"""
        return page_of(reading.read_interpretations(db(), current_actor(), panel_id), query)


@blp.route("/patients/<path:patient_id>/trend")
class PatientTrend(MethodView):
    @roles(*READERS)
    @blp.arguments(TrendQuery, location="query")
    @blp.response(200, TrendPage)
    def get(self, query: dict[str, Any], patient_id: str) -> Any:
        """One analyte of one patient over time, in canonical units"""
        rt, session = runtime(), db()
        ruleset = _active_ruleset()
        if query["analyte"] not in ruleset.analytes:
            raise Problem(
                422,
                f"unknown analyte {query['analyte']!r}",
                errors={"analyte": [f"unknown analyte; known: {', '.join(ruleset.analytes)}"]},
            )
        items, total = reading.patient_trend(
            session,
            current_actor(),
            rt.rulesets,
            patient_id,
            query["analyte"],
            query["page"],
            query["per_page"],
            clinic_name=query.get("clinic"),
        )
        return page_body(items, total, query)
