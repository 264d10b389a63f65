"""One error hierarchy for the whole tool.

Every failure a user can cause or meet is a `ReleaseError` subclass carrying the one-line
message they see and the exit code the CLI returns:

    0  done / allowed
    1  a check said no (verification, gate, canary)
    2  bad usage, config or input
    3  an outside system failed (registry, AWS, hub, docker)

Exactly one boundary (`release.cli.main`) catches `ReleaseError`; anything else is a bug
and shows its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_REMOTE = 3


class ReleaseError(Exception):
    """Root of every error the tool reports to a user."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: further lines (e.g. every mismatching file); printed after the message
        self.details: list[str] = list(details or [])

    def __str__(self) -> str:
        return self.message


# --- 1: a check said no -------------------------------------------------------------
class CheckFailed(ReleaseError):
    """A verification, gate or canary check said no."""

    exit_code = EXIT_CHECK_FAILED


class VerificationFailed(CheckFailed):
    """Bytes, signatures, identities or subjects do not match what was claimed."""


class GateDenied(CheckFailed):
    """The release policy denied the digest."""


class CanaryFailed(CheckFailed):
    """The canary found the candidate's behaviour moved beyond its thresholds."""


class SizeLimitExceeded(CheckFailed):
    """The image is larger than a configured or platform limit."""


class PromotionLocked(CheckFailed):
    """Another promotion of the same environment holds its lease (`release.lease`); exit 1:
    wait for it, or for the lease to expire if that promoter is dead."""


class LeaseLost(CheckFailed):
    """Our promotion lease was taken over while we held it: the promotion stopped without
    touching anything more; exit 1."""


class Interleaved(VerificationFailed):
    """A Lambda version we published is not what we deployed: another writer changed the
    function between our update and the publish (`release.deploy.lambda_`); exit 1."""

    def __init__(self, function: str, detail: str) -> None:
        super().__init__(f"publish {function}: {detail}")
        self.function = function
        self.detail = detail


# --- 2: bad usage, config or input ---------------------------------------------------
class UsageError(ReleaseError):
    """The command line or an input file is wrong."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """release.toml (or a file it names) is missing or invalid."""


class NotADigest(UsageError):
    """A tag or other mutable reference was given where a digest is required."""

    @classmethod
    def from_ref(cls, ref: str) -> NotADigest:
        return cls(
            f"{ref!r} is not a digest: give sha256:<64 hex> or REPO@sha256:<64 hex> "
            "(tags never decide anything)"
        )


class NotFound(UsageError):
    """A digest or repository named by the user does not exist where it was looked for."""


# --- 3: an outside system failed -----------------------------------------------------
class RemoteError(ReleaseError):
    """The hub, a registry, AWS or the Docker engine failed or could not be reached."""

    exit_code = EXIT_REMOTE


class StepFailed(RemoteError):
    """One AWS call of a Lambda deployment step failed (`release.deploy.lambda_`); exit 3.
    The target puts every function back and re-raises it as a `RemoteError` naming the
    step; `release.promote` records the failure in the ledger either way."""

    def __init__(self, step: str, function: str, cause: BaseException) -> None:
        super().__init__(f"{step} {function}: {aws_error_message(cause)}")
        self.step = step
        self.function = function
        self.cause = cause


# --- AWS error text (boto3 ClientError / BotoCoreError) ------------------------------
def aws_error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError (`ResourceNotFoundException`), or ""."""
    resp = getattr(exc, "response", None)
    return str(resp.get("Error", {}).get("Code", "")) if isinstance(resp, dict) else ""


def aws_error_message(exc: BaseException) -> str:
    """`Code: Message` of a botocore ClientError, else the exception's own text."""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict) and "Error" in resp:
        err = resp["Error"]
        return f"{err.get('Code', '?')}: {err.get('Message', '')}".rstrip(": ")
    return str(exc) or type(exc).__name__
