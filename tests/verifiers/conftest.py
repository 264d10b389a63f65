"""One real pipeline run on the example project (key mode), then the same image signed
keyless against the private test Sigstore instance: the outputs the third-party verifier
tests read. sigstore-js is installed from the committed lock (`npm ci`)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tools import REPO, copy_project, require_binary, run_cli

JS = REPO / "tests" / "verifiers" / "js"
IDENTITY = "https://github.com/acme/platform/.github/workflows/release.yml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True)
class Released:
    project: Path
    env: dict[str, str]
    digest: str
    #: the hex name of the image in the layout (org.opencontainers.image.ref.name)
    name: str
    out_dir: Path
    registry: Path
    public_key: Path
    lock: dict[str, Any]


@pytest.fixture(scope="session")
def sigstore_js() -> Path:
    """tests/verifiers/js with node_modules installed by `npm ci` from package-lock.json."""
    npm = require_binary("npm")
    require_binary("node")
    stamp = JS / "node_modules" / ".package-lock.json"
    lock = JS / "package-lock.json"
    if not stamp.is_file() or stamp.stat().st_mtime < lock.stat().st_mtime:
        p = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert p.returncode == 0, p.stderr[-3000:]
    return JS / "verify.js"


@pytest.fixture(scope="module")
def released(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Released:
    """`release pipeline` on the example project, as a user runs it (key mode)."""
    project = copy_project(tmp_path_factory.mktemp("verifiers") / "project", git=True)
    env = {"RELEASE_BASE": base_image, "RELEASE_CACHE_DIR": str(project / ".cache")}
    r = run_cli("pipeline", "--json", cwd=project, env=env)
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    digest = doc["digest"]
    return Released(
        project=project,
        env=env,
        digest=digest,
        name=digest.removeprefix("sha256:"),
        out_dir=Path(doc["out_dir"]),
        registry=project / ".release" / "registry",
        public_key=project / ".release" / "keys" / "signing.pem.pub",
        lock=json.loads((project / "model" / "model.lock.json").read_text()),
    )
