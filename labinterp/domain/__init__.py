"""The pure clinical engine: units, reference intervals, grading, findings, red flags.

No Flask, Celery, SQLAlchemy or marshmallow import is allowed below this package; the clock
and the ruleset are always arguments.
"""

from labinterp.domain.acceptance import AcceptedPanel, AcceptedResult, accept_panel
from labinterp.domain.context import ContributingFactor, FollowUp, RedFlag
from labinterp.domain.findings import Finding
from labinterp.domain.interpretation import Interpretation, interpret, interpret_many
from labinterp.domain.judging import CriticalLimit, Interval, Judgement
from labinterp.domain.mechanisms import Note
from labinterp.domain.ruleset import Ruleset, RulesetError
from labinterp.domain.types import (
    Context,
    PanelRejected,
    RawPanel,
    RawRange,
    RawResult,
    Twitching,
)
from labinterp.domain.vocabulary import FindingStatus, Priority, significance

__all__ = [
    "AcceptedPanel",
    "AcceptedResult",
    "Context",
    "ContributingFactor",
    "CriticalLimit",
    "Finding",
    "FindingStatus",
    "FollowUp",
    "Interpretation",
    "Interval",
    "Judgement",
    "Note",
    "PanelRejected",
    "Priority",
    "RawPanel",
    "RawRange",
    "RawResult",
    "RedFlag",
    "Ruleset",
    "RulesetError",
    "Twitching",
    "accept_panel",
    "interpret",
    "interpret_many",
    "significance",
]
