"""The pure clinical engine: units, reference intervals, grading, findings, red flags.

No Flask, Celery, SQLAlchemy or marshmallow import is allowed below this package; the clock
and the ruleset are always arguments.

One panel: ``interpret(accept_panel(raw, ruleset, now), ruleset)``; its ``to_dict()`` is the
interpretation of API.md. Many (re-processing, in chunks): ``interpret_many(panels, ruleset,
now)`` yields, in order, each panel's :class:`Interpretation` or the exception that stopped
it (:class:`PanelRejected`, or an engine failure), never stopping at one. Either way each
ruleset is compiled once, on first use, into the lookups the hot loop reads
(``ruleset.compiled``, :mod:`labinterp.domain.compiled`): intervals and critical limits per
analyte and kind of patient, citations, vocabularies, spellings already identified. Keep one
:class:`Ruleset` object per version for the life of the process (``load_rulesets()`` once),
so that this is paid once.
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
