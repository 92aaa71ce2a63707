"""SQLAlchemy models. Import them from here: ``from labinterp.models import Panel``."""

from labinterp.models.base import NAMING_CONVENTION, Base, UtcDateTime, json_type, utcnow
from labinterp.models.interpretations import Interpretation, InterpretationCode
from labinterp.models.operations import AuditEvent, ReprocessingJob, Setting
from labinterp.models.panels import (
    FailureCode,
    Panel,
    PanelContext,
    PanelRevision,
    PanelStatus,
    Patient,
    Result,
    SourceFormat,
)
from labinterp.models.review import (
    Alert,
    AlertAttempt,
    AlertStatus,
    ClinicWebhook,
    Decision,
    Review,
    ReviewStatus,
)
from labinterp.models.tenancy import (
    ApiToken,
    ApiTokenClinic,
    Clinic,
    ClinicCode,
    User,
    UserClinic,
)

__all__ = [
    "NAMING_CONVENTION",
    "Alert",
    "AlertAttempt",
    "AlertStatus",
    "ApiToken",
    "ApiTokenClinic",
    "AuditEvent",
    "Base",
    "Clinic",
    "ClinicCode",
    "ClinicWebhook",
    "Decision",
    "FailureCode",
    "Interpretation",
    "InterpretationCode",
    "Panel",
    "PanelContext",
    "PanelRevision",
    "PanelStatus",
    "Patient",
    "ReprocessingJob",
    "Result",
    "Review",
    "ReviewStatus",
    "Setting",
    "SourceFormat",
    "User",
    "UserClinic",
    "UtcDateTime",
    "json_type",
    "utcnow",
]
