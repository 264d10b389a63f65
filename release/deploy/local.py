"""The `local` target: the environment's live digest is the one the ledger records.

There is nothing to move: promoting writes the ledger event (done by `release.promote`)
and `release invoke FUNCTION --env ENV EVENT.json` (`invoke`) runs the function from the
promoted image's own files: /opt/deps, `[image].workdir`, `[image].model_dir` and the
baked lock are extracted from the image's MERGED filesystem (every layer, whiteouts
applied: what the container would see) once per digest under `.release/invoke/<hex>/`
(refused when the model directory is not exactly the lock's files or another layer
touched it; the model re-hashed on disk) and the runner runs CMD there: the one shipped
with the tool (release/deploy/runner.py, passed as source: nothing of the tool is
imported) or `python3 -m <[code].invoke> CMD` when the config names the platform's own,
with PYTHONPATH=<deps>:<workdir> and MODEL_DIR / MODEL_LOCK pointing into the
extraction - the interpreter's own site-packages are not on the path (`-S`), so nothing from the
checkout or the venv can stand in for the image.
The function gets its configured environment (`[environments.ENV].variables` +
`.function_variables.NAME`) plus the caller's AWS credentials and endpoint settings
(every `AWS_*` variable).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.config import Config
from release.deploy import DeployResult, FunctionState, StepCallback
from release.digest import Reference
from release.errors import CheckFailed, ConfigError, UsageError, VerificationFailed


class LocalTarget:
    kind = "local"

    def __init__(self, cfg: Config, env: str) -> None:
        self.cfg = cfg
        self.env = env
        e = cfg.environment(env)
        self.functions = dict(e.functions) or {name: name for name in cfg.functions}

    def deploy(self, ref: Reference, on_step: StepCallback) -> DeployResult:
        fns = tuple(
            FunctionState(name, target, version=ref.digest, image_uri=str(ref))
            for name, target in sorted(self.functions.items())
        )
        return DeployResult(str(ref), fns)

    def live(self) -> list[FunctionState]:
        from release.ledger import open_ledger

        cur = open_ledger(self.cfg).current(self.env)
        return [
            FunctionState(
                name,
                target,
                version=cur.digest if cur else None,
                image_uri=cur.evidence.get("reference") if cur else None,
            )
            for name, target in sorted(self.functions.items())
        ]


# --- release invoke ---------------------------------------------------------------------
#: where the deps land in the image (ARCHITECTURE contract 1)
_DEPS = "opt/deps"
#: the caller's variables a function run by `release invoke` keeps (besides every AWS_*)
_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


@dataclass(frozen=True)
class Invocation:
    function: str
    handler: str
    digest: str
    returncode: int
    result: Any  # the handler's JSON result (or the Lambda-style error document)
    stderr: str
    root: Path  # the extraction the function ran from

    @property
    def failed(self) -> bool:
        """The handler raised, or returned a statusCode of 500 or more (`release invoke`
        exits 1 on either; a 4xx is the handler answering a bad request: exit 0)."""
        if self.returncode != 0:
            return True
        code = self.result.get("statusCode") if isinstance(self.result, dict) else None
        return isinstance(code, int) and code >= 500


def extract_image(cfg: Config, ref: Reference) -> tuple[Any, Any]:
    """The image's deps, workdir, model directory and lock, extracted from its merged
    filesystem under `<state>/invoke/<digest hex>/` (once per digest; later calls reuse
    it). Returns the `ImageTree` and the ImageView. The model directory is checked
    against the lock baked in the image on extraction (refused on any difference or a
    foreign layer) and re-hashed on disk; the handler verifies it again at cold start."""
    from release._io import staging_dir
    from release.canary.offline import extract_merged, verify_model_dir
    from release.image.inspect import open_image
    from release.image.registry import open_registry

    registry = open_registry(ref.repository or cfg.image.registry, cfg.root)
    image = open_image(registry, ref.digest)
    root = cfg.state_dir / "invoke" / ref.digest.split(":", 1)[1]
    where = f"image {ref.digest[:19]}"
    if (root / ".complete").is_file():
        return _tree(cfg, root), image
    root.parent.mkdir(parents=True, exist_ok=True)
    with staging_dir(root) as tmp:
        tree = extract_merged(cfg, image, tmp, where=where, extra=[_DEPS])
        verify_model_dir(tree.model_dir, tree.lock, where)
        (tmp / ".complete").write_text(ref.digest + "\n")
        try:
            tmp.rename(root)
        except OSError:
            if not (root / ".complete").is_file():  # a concurrent extraction won: fine
                raise
    return _tree(cfg, root), image


def _tree(cfg: Config, root: Path) -> Any:
    from release.canary.offline import IMAGE_LOCK, ImageTree

    return ImageTree(
        root,
        root / cfg.image.model_dir.strip("/"),
        root / IMAGE_LOCK,
        root / cfg.image.workdir.strip("/"),
        root / _DEPS,
    )


def invoke(
    cfg: Config, env: str, function: str, event: bytes, *, timeout: float = 900.0
) -> Invocation:
    """Run FUNCTION of the image promoted to ENV from that image's own layers:
    `python3 -m <[code].invoke> <its CMD>` with the image's deps and code on the import
    path (nothing else: no site-packages), MODEL_DIR/MODEL_LOCK in the extraction, the
    function's configured variables and the caller's AWS_* settings."""
    import os
    import subprocess
    import sys

    from release.digest import parse_reference
    from release.ledger import open_ledger

    e = cfg.environment(env)
    if e.target != "local":
        raise UsageError(f"release invoke runs local environments; {env!r} is a {e.target} target")
    if function not in cfg.functions:
        known = ", ".join(sorted(cfg.functions))
        raise UsageError(f"no function {function!r} in [functions] (configured: {known})")
    cur = open_ledger(cfg).current(env)
    if cur is None:
        raise UsageError(f"nothing is promoted to {env!r} yet: release promote DIGEST --env {env}")
    ref = parse_reference(cur.evidence.get("reference") or cur.digest)
    if ref.digest != cur.digest:
        raise VerificationFailed(
            f"ledger event {cur.seq}: reference {ref} does not match {cur.digest}"
        )
    tree, image = extract_image(cfg, ref)
    root = tree.root
    handler = image.functions.get(function)
    if not handler:
        raise UsageError(
            f"image {ref.digest[:19]} has no function {function!r} in its dev.release.functions label"
        )
    run_env = {k: v for k, v in os.environ.items() if k in _KEEP or k.startswith("AWS_")}
    run_env.update(e.variables_of(function))  # what the function gets in Lambda
    run_env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(tree.deps), str(tree.workdir)]),
            "MODEL_DIR": str(tree.model_dir),
            "MODEL_LOCK": str(tree.lock),
            "LAMBDA_TASK_ROOT": str(tree.workdir),
            "AWS_LAMBDA_FUNCTION_NAME": e.functions.get(function, function),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if cfg.code.invoke:
        runner = ["-m", cfg.code.invoke]
    else:  # the runner shipped with the tool, run as source: nothing of it in the image
        from importlib.resources import files

        runner = ["-c", files("release.deploy").joinpath("runner.py").read_text("utf-8")]
    try:
        proc = subprocess.run(
            [sys.executable, "-S", *runner, handler],
            input=event,
            capture_output=True,
            cwd=tree.workdir,
            env=run_env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{function} did not return within {timeout:.0f}s") from None
    stderr = proc.stderr.decode(errors="replace")
    if proc.returncode == 2:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "bad event"
        raise UsageError(f"{function}: {last}")
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        last = (
            stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {proc.returncode}"
        )
        if cfg.code.invoke and "No module named" in last:
            raise ConfigError(
                f"[code].invoke: {cfg.code.invoke} is not in the image's code layer ({last}); "
                "unset it to use the runner shipped with release"
            ) from None
        raise CheckFailed(
            f"{function} ({handler}) crashed: {last}", details=stderr.strip().splitlines()[-15:]
        ) from None
    return Invocation(function, handler, ref.digest, proc.returncode, result, stderr, root)
