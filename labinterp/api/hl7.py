"""HL7 v2 in: ``POST /hl7/v2`` takes an ORU^R01 and answers its ACK.

The ACK is the answer, with HTTP 200 whether it says ``AA``, ``AE`` or ``AR``: an HL7 sender
reads MSA-1, and an interface engine treats any other HTTP status as a transport failure to
retry (a retry cannot fix an ``AE``). Authentication (401, 403), the body's size (413) and
its Content-Type (415) are answered as problem+json, as everywhere else in the API.
"""

from __future__ import annotations

import datetime as dt

from flask import Response, request
from flask.views import MethodView

from labinterp.api.auth import current_actor, roles
from labinterp.api.panels import _active_ruleset, _clinic_of_poster
from labinterp.api.parsing import Blueprint, read_body
from labinterp.api.session import runtime
from labinterp.services.hl7_intake import receive_oru

HL7_TYPES = ("application/hl7-v2", "x-application/hl7-v2+er7")

blp = Blueprint(
    "hl7", __name__, url_prefix="/hl7", description="HL7 v2: ORU^R01 results in, ACKs out."
)


@blp.route("/v2")
class Hl7Messages(MethodView):
    @roles("clinic")
    @blp.doc(
        requestBody={
            "required": True,
            "content": {kind: {"schema": {"type": "string"}} for kind in HL7_TYPES},
        },
        responses={
            "200": {
                "description": "The ACK (MSA-1 AA, AE or AR; ERR segments name each field "
                "that was wrong), in the request's media type",
                "content": {kind: {"schema": {"type": "string"}} for kind in HL7_TYPES},
            }
        },
    )
    def post(self) -> Response:
        """Post an HL7 v2 ORU^R01 message (one panel per OBR group); the answer is its ACK"""
        data = read_body(request, HL7_TYPES)
        received = receive_oru(
            runtime().engine,
            current_actor(),
            _clinic_of_poster(),
            data,
            _active_ruleset(),
            dt.datetime.now(dt.UTC),
        )
        return Response(received.ack.encode(), status=200, mimetype=request.mimetype)
