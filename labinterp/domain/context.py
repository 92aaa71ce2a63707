"""The patient's context: red flags, contributing factors and follow-ups.

Red flags are evaluated whether or not twitching is reported, except where a rule requires
twitching (``weakness``: muscle weakness *with* twitching; persistence and sites).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labinterp.domain.ruleset import RedFlagRule, Ruleset
from labinterp.domain.types import Context
from labinterp.domain.units import join_and


def _words(code: str) -> str:
    return code.replace("_", " ")


@dataclass(frozen=True)
class RedFlag:
    code: str
    detail: str
    urgent: bool
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "detail": self.detail,
            "urgent": self.urgent,
            "source": self.source,
        }


@dataclass(frozen=True)
class ContributingFactor:
    code: str
    kind: str  # "factor" | "medication"
    relates_to: tuple[str, ...]
    detail: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "kind": self.kind,
            "relates_to": list(self.relates_to),
            "detail": self.detail,
            "source": self.source,
        }


@dataclass(frozen=True)
class FollowUp:
    code: str
    reason: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "source": self.source}


def distinct_sites(context: Context) -> tuple[str, ...]:
    """Twitching sites, counted case-insensitively, first spelling kept."""
    if context.twitching is None:
        return ()
    seen: dict[str, str] = {}
    for site in context.twitching.sites:
        key = " ".join(site.split()).casefold()
        if key and key not in seen:
            seen[key] = site.strip()
    return tuple(seen.values())


def _red_flag(rule: RedFlagRule, context: Context, ruleset: Ruleset) -> RedFlag | None:
    twitching = context.twitching
    if (
        rule.requires_twitching
        or rule.twitching_days_over is not None
        or rule.twitching_sites_over is not None
    ) and twitching is None:
        return None
    days = twitching.duration_days if twitching is not None else None
    if rule.twitching_days_over is not None and (days is None or days <= rule.twitching_days_over):
        return None
    sites = distinct_sites(context)
    if rule.twitching_sites_over is not None and len(sites) <= rule.twitching_sites_over:
        return None
    matched = [s for s in context.symptoms if s in rule.any_symptom]
    if rule.any_symptom and not matched:
        return None
    detail = rule.detail.format(
        days=days,
        site_count=len(sites),
        sites=", ".join(sites),
        symptoms=join_and([_words(s) for s in matched]),
    )
    return RedFlag(rule.code, detail, rule.urgent, ruleset.cite(rule.sources))


def red_flags(context: Context, ruleset: Ruleset) -> tuple[RedFlag, ...]:
    rules = ruleset.red_flags
    if context.twitching is None and not context.symptoms:
        rules = ruleset.compiled.red_flags_without_context
    found = (_red_flag(rule, context, ruleset) for rule in rules)
    return tuple(flag for flag in found if flag is not None)


def contributing_factors(
    context: Context, present: set[str], ruleset: Ruleset
) -> tuple[ContributingFactor, ...]:
    """Each reported medication, then factor, that relates to something present — once."""
    if context.twitching is not None:
        present = present | {"twitching"}
    out: list[ContributingFactor] = []
    reported = [(m, "medication") for m in context.medications] + [
        (f, "factor") for f in context.factors
    ]
    for code, kind in reported:
        relates: list[str] = []
        details: list[str] = []
        sources: list[str] = []
        for relation in ruleset.contributing_factors.get(code, ()):
            targets = [
                t for item in relation.relates_to for t in ruleset.code_groups.get(item, (item,))
            ]
            matched = [t for t in targets if t in present]
            if not matched:
                continue
            relates.extend(t for t in matched if t not in relates)
            details.append(relation.detail)
            sources.append(ruleset.cite(relation.sources))
        if relates:
            out.append(
                ContributingFactor(
                    code,
                    kind,
                    tuple(relates),
                    "; ".join(dict.fromkeys(details)),
                    "; ".join(dict.fromkeys(sources)),
                )
            )
    return tuple(out)


def follow_ups(
    findings: set[str],
    measured: set[str],
    flags: tuple[RedFlag, ...],
    requested: list[str],
    ruleset: Ruleset,
) -> tuple[FollowUp, ...]:
    """One entry per code, reasons joined, in the ruleset's order."""
    reasons: dict[str, list[str]] = {}
    sources: dict[str, list[str]] = {}
    rules = ruleset.follow_ups
    if not (findings or flags or requested):
        rules = ruleset.compiled.follow_ups_without_cause
    for rule in rules:
        if rule.by_mechanism:
            if rule.code not in requested:
                continue
            reason = rule.reason
        else:
            if rule.any_finding and findings.isdisjoint(rule.any_finding):
                continue
            if (rule.any_red_flag or rule.any_urgent_red_flag) and not flags:
                continue
            if any(a in measured for a in rule.not_measured):
                continue
            matched = [c for c in rule.any_finding if c in findings]
            matched_flags = [
                f for f in flags if "*" in rule.any_red_flag or f.code in rule.any_red_flag
            ]
            if rule.any_red_flag and not matched_flags:
                continue
            if rule.any_urgent_red_flag:
                matched_flags = [f for f in flags if f.urgent]
                if not matched_flags:
                    continue
            reason = rule.reason.format(
                findings=join_and([_words(c) for c in matched]),
                red_flags="; ".join(f.detail for f in matched_flags),
            )
        texts = reasons.setdefault(rule.code, [])
        if reason not in texts:
            texts.append(reason)
            sources.setdefault(rule.code, []).append(ruleset.cite(rule.sources))
    return tuple(
        FollowUp(code, "; ".join(reasons[code]), "; ".join(dict.fromkeys(sources[code])))
        for code in ruleset.follow_up_order()
        if code in reasons
    )
