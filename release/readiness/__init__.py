"""The readiness review of a live environment: `collect` reads AWS, `render` writes it.

See checks.py for the rows and docs/readiness.md for thresholds, config and exit codes.
"""

from release.readiness.checks import Clients, collect
from release.readiness.model import ReadinessReport, Row

__all__ = ["Clients", "ReadinessReport", "Row", "collect"]
