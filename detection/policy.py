"""The detection policy: its default rules and the validation of a new version."""

from __future__ import annotations

from typing import Any

from detection.models import RuleCode, Severity

#: Parameters each rule accepts, with their types; anything else is refused.
PARAMETERS: dict[str, dict[str, type]] = {
    RuleCode.REPEAT_VIEWING: {"threshold": int, "window_days": int, "consent_needs_confirmation": bool},
    RuleCode.SYSTEMATIC_RECORDING: {},
    RuleCode.EVIDENCE_PURPOSE: {},
    RuleCode.COLLATERAL_INTRUSION: {},
    RuleCode.COVERT_ACCESS: {"access_methods": list},
    RuleCode.POSSIBLE_CHIS: {},
    RuleCode.OUTSIDE_AUTHORISATION: {},
    RuleCode.CLOSED_CASE: {},
    RuleCode.LATE_ENTRIES: {"threshold": int, "window_days": int},
}

#: SPEC's defaults: "repeat" is a local policy choice (no law sets a number of visits).
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    RuleCode.REPEAT_VIEWING: {
        "enabled": True,
        "severity": Severity.MEDIUM,
        # consent_needs_confirmation: a consent covers the looks of the practitioner who
        # recorded it only once an officer has confirmed it (for every rule that consent silences).
        "params": {"threshold": 2, "window_days": 28, "consent_needs_confirmation": True},
    },
    RuleCode.SYSTEMATIC_RECORDING: {"enabled": True, "severity": Severity.MEDIUM, "params": {}},
    RuleCode.EVIDENCE_PURPOSE: {"enabled": True, "severity": Severity.MEDIUM, "params": {}},
    RuleCode.COLLATERAL_INTRUSION: {"enabled": True, "severity": Severity.MEDIUM, "params": {}},
    RuleCode.COVERT_ACCESS: {
        "enabled": True,
        "severity": Severity.MEDIUM,
        "params": {"access_methods": ["covert_identity", "personal_account"]},
    },
    RuleCode.POSSIBLE_CHIS: {"enabled": True, "severity": Severity.HIGH, "params": {}},
    RuleCode.OUTSIDE_AUTHORISATION: {"enabled": True, "severity": Severity.MEDIUM, "params": {}},
    RuleCode.CLOSED_CASE: {"enabled": True, "severity": Severity.MEDIUM, "params": {}},
    # A practitioner's late entries (logged late, or corrected to another moment) about one person.
    RuleCode.LATE_ENTRIES: {
        "enabled": True,
        "severity": Severity.MEDIUM,
        "params": {"threshold": 2, "window_days": 28},
    },
}

_LIMITS = {"threshold": (1, 1000), "window_days": (1, 3650)}


def validate_rules(rules: Any) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """A complete, normalised rule set from ``rules`` (rules not named keep nothing: every
    rule must be given), and the problems found, keyed by ``rules.CODE.field``."""
    from cases.models import AccessMethod

    problems: dict[str, list[str]] = {}
    if not isinstance(rules, dict):
        return {}, {"rules": ["Give an object of rules keyed by their code."]}
    for code in rules:
        if code not in PARAMETERS:
            problems[f"rules.{code}"] = [f"Unknown rule; the rules are {', '.join(PARAMETERS)}."]
    clean: dict[str, dict[str, Any]] = {}
    for code, allowed in PARAMETERS.items():
        where = f"rules.{code}"
        rule = rules.get(code)
        if not isinstance(rule, dict):
            problems[where] = ["Every rule must be given, as {enabled, severity, params}."]
            continue
        for key in set(rule) - {"enabled", "severity", "params"}:
            problems[f"{where}.{key}"] = ["Unknown field."]
        enabled, severity, params = rule.get("enabled"), rule.get("severity"), rule.get("params", {})
        if not isinstance(enabled, bool):
            problems[f"{where}.enabled"] = ["Must be true or false."]
        if severity not in Severity.values:
            problems[f"{where}.severity"] = [f"Choose one of {', '.join(Severity.values)}."]
        if not isinstance(params, dict):
            problems[f"{where}.params"] = ["Must be an object."]
            continue
        for name in params:
            if name not in allowed:
                known = ", ".join(allowed) or "none"
                problems[f"{where}.params.{name}"] = [f"Unknown parameter; this rule takes: {known}."]
        for name, kind in allowed.items():
            value = params.get(name, DEFAULT_RULES[code]["params"].get(name))
            if kind is bool and not isinstance(value, bool):
                problems[f"{where}.params.{name}"] = ["Must be true or false."]
            elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                problems[f"{where}.params.{name}"] = ["Must be a whole number."]
            elif kind is int and not _LIMITS[name][0] <= value <= _LIMITS[name][1]:
                low, high = _LIMITS[name]
                problems[f"{where}.params.{name}"] = [f"Must be from {low} to {high}."]
            elif kind is list and (
                not isinstance(value, list) or not value or any(v not in AccessMethod.values for v in value)
            ):
                problems[f"{where}.params.{name}"] = [f"Name one or more of {', '.join(AccessMethod.values)}."]
        clean[code] = {
            "enabled": enabled,
            "severity": severity,
            "params": {name: params.get(name, DEFAULT_RULES[code]["params"].get(name)) for name in allowed},
        }
    return clean, problems
