"""JSON Schemas of the handlers' inputs, compiled once with fastjsonschema."""

from __future__ import annotations

from typing import Any

import fastjsonschema

ENTITY_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"}

ACCOUNT = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": "string", "maxLength": 256},
        "root_mfa_enabled": {"type": "boolean"},
        "cloudtrail_enabled": {"type": "boolean"},
        "guardduty_enabled": {"type": "boolean"},
        "ebs_default_encryption": {"type": "boolean"},
        "public_s3_buckets": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "maxItems": 1000,
        },
    },
    "additionalProperties": False,
}

POSTURE = {
    "type": "object",
    "required": ["accounts", "controls", "findings"],
    "properties": {
        "accounts": {"type": "array", "items": ACCOUNT, "maxItems": 1000},
        "controls": {
            "type": "object",
            "properties": {
                "password_policy": {
                    "type": "object",
                    "properties": {"min_length": {"type": "integer", "minimum": 0, "maximum": 256}},
                },
                "sso_enforced": {"type": "boolean"},
                "incident_response_plan": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
        "findings": {
            "type": "array",
            "maxItems": 5000,
            "items": {
                "type": "object",
                "required": ["id", "severity"],
                "properties": {
                    "id": {"type": "string", "minLength": 1, "maxLength": 128},
                    "severity": {
                        "type": "string",
                        "enum": [
                            "CRITICAL",
                            "HIGH",
                            "MEDIUM",
                            "LOW",
                            "INFO",
                            "critical",
                            "high",
                            "medium",
                            "low",
                            "info",
                        ],
                    },
                    "status": {
                        "type": "string",
                        "enum": ["ACTIVE", "RESOLVED", "active", "resolved"],
                    },
                    "title": {"type": "string", "maxLength": 512},
                    "resource": {"type": "string", "maxLength": 512},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

SCORING_JOB = {
    "type": "object",
    "required": ["entity_id"],
    "properties": {"entity_id": ENTITY_ID, "posture": POSTURE},
    "additionalProperties": False,
}

NEW_ENTITY = {
    "type": "object",
    "required": ["name", "domain", "posture"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 256},
        "domain": {
            "type": "string",
            "maxLength": 253,
            "pattern": "^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$",
        },
        "acquired_on": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
        "posture": POSTURE,
    },
    "additionalProperties": False,
}

FINDING_MESSAGE = {
    "type": "object",
    "required": ["finding_id", "entity_id", "rule", "severity", "resource"],
    "properties": {
        "finding_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "entity_id": ENTITY_ID,
        "rule": {"type": "string", "minLength": 1, "maxLength": 64},
        "severity": {"type": "string"},
        "resource": {"type": "string", "minLength": 1, "maxLength": 512},
        "title": {"type": "string"},
        "account_id": {"type": "string"},
    },
    "additionalProperties": True,
}

validate_scoring_job = fastjsonschema.compile(SCORING_JOB)
validate_new_entity = fastjsonschema.compile(NEW_ENTITY)
validate_finding = fastjsonschema.compile(FINDING_MESSAGE)


def problem(exc: Exception) -> str:
    """One readable sentence for a fastjsonschema error ("data.x must be ...")."""
    msg = getattr(exc, "message", str(exc))
    return (
        msg.replace("data.", "", 1).replace("data ", "request ", 1)
        if msg.startswith("data")
        else msg
    )


def check(validator: Any, doc: Any) -> str | None:
    try:
        validator(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        return problem(exc)
    return None
