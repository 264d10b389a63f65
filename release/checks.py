"""One verdict type: a named check, whether it held and why (`Check`), shared by every
stage that reports checks - the claims of `release verify`, the canary's statistical
checks (the `checks` of a signed canary report) and the audit report.

A claim check carries a name, its verdict and a detail line; a canary check also
carries its statistic, the value and threshold it was judged by, and a p-value with its
alpha where a test gives one. It is a pydantic dataclass: a frozen internal result that
is also the wire format of a canary report's checks (unknown fields refused). On that
wire the verdict is named `passed` (the canary-report schema since version 1); in Python
and in the JSON of `release verify` and `release audit` it is `ok`.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass


@dataclass(
    frozen=True,
    config=ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True),
)
class Check:
    """One check: what was checked, the verdict, why; statistics when a test judged it."""

    name: str
    ok: bool = Field(validation_alias="passed", serialization_alias="passed")
    detail: str = ""
    statistic: str | None = None
    value: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    p_threshold: float | None = None
    items: tuple[str, ...] = ()


__all__ = ["Check"]
