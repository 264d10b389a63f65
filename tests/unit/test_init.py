"""`release init` as an adopter runs it, in a fresh git repository: the handlers it finds
(by reading, never importing), a release.toml that loads, files kept unless --force, the
one-line refusals, and a workflow that actionlint and zizmor pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.tools import REPO, run_cli

ACTION = "acme/lambda-release@" + "a" * 40
BIN = Path(sys.executable).parent
MODEL = ("--model-repo", "distilbert/distilbert-base-uncased-finetuned-sst-2-english")


def _git_init(path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(path)], check=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _adopter(tmp_path: Path) -> Path:
    """A git repository with package `app`: two handlers in nested modules, one module with
    both names, a helper without one, a test and byte code that must not count."""
    repo = tmp_path / "adopter"
    _git_init(repo)
    _write(repo / "app" / "__init__.py", "")
    _write(repo / "app" / "analysis.py", "def lambda_handler(event, context):\n    return {}\n")
    _write(
        repo / "app" / "jobs" / "nightly.py",
        "import os\n\ndef helper():\n    pass\n\ndef handler(event, context):\n    return 1\n",
    )
    _write(
        repo / "app" / "api" / "onboarding.py",
        "def handler(e, c):\n    pass\n\ndef lambda_handler(e, c):\n    pass\n",
    )
    _write(repo / "app" / "util.py", "def helper():\n    def handler(e, c):\n        pass\n")
    _write(repo / "app" / "tests" / "fake.py", "def handler(e, c):\n    pass\n")
    _write(repo / "app" / "__pycache__" / "stale.py", "def handler(e, c):\n    pass\n")
    _write(repo / "app" / "asyncmod.py", "async def handler(e, c):\n    pass\n")
    return repo


def _init(repo: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_cli(
        "init", "--package", "app", *MODEL, "--action-ref", ACTION, *args, cwd=repo, env=env
    )


def _tree(repo: Path) -> dict[str, bytes]:
    return {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts[:1]
    }


FUNCTIONS = {
    "analysis": "app.analysis.lambda_handler",
    "nightly": "app.jobs.nightly.handler",
    "onboarding": "app.api.onboarding.lambda_handler",
}


def test_init_writes_a_config_that_loads_with_the_discovered_functions(tmp_path: Path) -> None:
    from release.config import load

    repo = _adopter(tmp_path)
    r = _init(repo)
    assert r.code == 0, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[:5] == [
        "wrote release.toml",
        "wrote model/canary.jsonl",
        "wrote requirements.in",
        "wrote .github/workflows/release.yml",
        "wrote .gitignore",
    ]
    cfg = load(repo / "release.toml")
    assert cfg.functions == FUNCTIONS
    assert cfg.code.package == "app" and cfg.code.predict is None and cfg.code.policy is None
    assert cfg.code.invoke is None and cfg.gate.policy is None
    assert cfg.model.repo == MODEL[1] and cfg.model.revision == "main"
    assert cfg.model.include == ["*"] and cfg.model.lock == "model/model.lock.json"
    assert cfg.image.requirements == "requirements.lock" and cfg.image.model_dir == "/opt/model"
    assert cfg.image.base == "public.ecr.aws/lambda/python:3.11@sha256:" + "0" * 64
    assert cfg.signing.mode == "key:.release/keys/signing.pem"
    assert cfg.canary.corpus == "model/canary.jsonl"
    local = cfg.environment("local")
    assert local.target == "local" and set(local.functions) == set(FUNCTIONS)
    text = (repo / "release.toml").read_text()
    assert '# predict = "app.model:Model.load"' in text
    assert "RELEASE_BASE overrides it" in text and "REPLACE this placeholder" in text
    assert "\n# [gate]   # unset: the default gate policy shipped with release" in text
    assert "OWNER/REPO/.github/workflows/release.yml@refs/heads/main" in text  # no origin


def test_flags_reach_the_config(tmp_path: Path) -> None:
    from release.config import load

    repo = _adopter(tmp_path)
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "origin", "git@github.com:acme/ml-platform.git"],
        check=True,
    )
    base = "123456789012.dkr.ecr.us-east-1.amazonaws.com/base@sha256:" + "b" * 64
    r = run_cli(
        "init",
        "--package", "app",
        "--model-path", "weights",
        "--include", "*.json",
        "--include", "onnx/*",
        "--model-dir", "/opt/ml",
        "--lock", "locks/model.json",
        "--corpus", "data/canary.jsonl",
        "--requirements", "app/requirements.lock",
        "--predict", "app.model:Model.load",
        "--base", base,
        "--action-ref", ACTION,
        cwd=repo,
    )  # fmt: skip
    assert r.code == 0, r.stderr
    cfg = load(repo / "release.toml")
    assert cfg.model.path == "weights" and cfg.model.repo is None
    assert cfg.model.include == ["*.json", "onnx/*"] and cfg.model.lock == "locks/model.json"
    assert cfg.image.model_dir == "/opt/ml" and cfg.image.base == base
    assert cfg.image.requirements == "app/requirements.lock"
    assert cfg.code.predict == "app.model:Model.load"
    assert cfg.canary.corpus == "data/canary.jsonl"
    assert (repo / "data" / "canary.jsonl").is_file()
    assert (repo / "app" / "requirements.in").is_file()
    text = (repo / "release.toml").read_text()
    assert "REPLACE this placeholder" not in text and "\n# predict" not in text
    assert (
        '# identity = "https://github.com/acme/ml-platform/.github/workflows/release.yml'
        '@refs/heads/main"' in text
    )


def test_a_second_run_refuses_and_changes_nothing(tmp_path: Path) -> None:
    repo = _adopter(tmp_path)
    assert _init(repo).code == 0
    before = _tree(repo)
    r = _init(repo)
    assert r.code == 2
    assert r.stderr.splitlines() == ["release: error: release.toml exists; --force overwrites it"]
    assert _tree(repo) == before


def test_force_rewrites_and_gitignore_is_appended_once(tmp_path: Path) -> None:
    repo = _adopter(tmp_path)
    _write(repo / ".gitignore", "*.pyc")  # no trailing newline: kept, line added after it
    assert _init(repo).code == 0
    first = _tree(repo)
    assert first[".gitignore"].decode().startswith("*.pyc\n# release:")
    (repo / "release.toml").write_text("edited\n")
    (repo / "model" / "canary.jsonl").write_text('{"id": "mine", "text": "x"}\n')
    r = _init(repo, "--force")
    assert r.code == 0, r.stderr
    assert r.stderr.splitlines()[:5] == [
        "overwrote release.toml",
        "overwrote model/canary.jsonl",
        "overwrote requirements.in",
        "overwrote .github/workflows/release.yml",
        "kept .gitignore (already ignores .release/)",
    ]
    assert _tree(repo) == first
    assert first[".gitignore"].decode().count(".release/") == 1


def test_existing_files_are_kept_and_an_existing_lock_gets_no_template(tmp_path: Path) -> None:
    repo = _adopter(tmp_path)
    _write(repo / "model" / "canary.jsonl", '{"id": "mine", "text": "real"}\n')
    _write(repo / "requirements.lock", "x==1 --hash=sha256:" + "0" * 64 + "\n")
    _write(repo / ".gitignore", "/.release/\n")
    r = _init(repo, "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["files"] == [
        {"path": "release.toml", "action": "wrote"},
        {"path": "model/canary.jsonl", "action": "kept", "why": "exists"},
        {"path": "requirements.lock", "action": "kept", "why": "exists"},
        {"path": ".github/workflows/release.yml", "action": "wrote"},
        {"path": ".gitignore", "action": "kept", "why": "already ignores .release/"},
    ]
    assert doc["functions"] == FUNCTIONS and doc["action_ref"] == ACTION
    assert doc["config"] == "release.toml"
    assert any("release model pin" in s for s in doc["next_steps"])
    assert (repo / "model" / "canary.jsonl").read_text() == '{"id": "mine", "text": "real"}\n'
    assert not (repo / "requirements.in").exists()
    assert "kept model/canary.jsonl (exists)" in r.stderr.splitlines()


def test_the_templates_say_what_an_adopter_needs(tmp_path: Path) -> None:
    from release.canary.offline import read_corpus

    repo = _adopter(tmp_path)
    r = _init(repo)
    assert r.code == 0, r.stderr
    assert 3 <= len(read_corpus(repo / "model" / "canary.jsonl").items) <= 5
    assert "a few hundred real inputs" in r.stderr
    req = (repo / "requirements.in").read_text()
    assert [ln for ln in req.splitlines() if ln and not ln.startswith("#")] == ["awslambdaric"]
    assert "# boto3" in req
    assert (
        "uv pip compile requirements.in --generate-hashes --python-version 3.11 "
        "--python-platform x86_64-manylinux_2_28 -o requirements.lock"
    ) in req
    assert (repo / ".gitignore").read_text().splitlines()[-1] == ".release/"


def test_the_generated_workflow_passes_actionlint_and_zizmor(tmp_path: Path) -> None:
    import yaml

    repo = _adopter(tmp_path)
    assert _init(repo, "--ci-config", "release.prod.toml").code == 0
    wf = repo / ".github" / "workflows" / "release.yml"
    p = subprocess.run([str(BIN / "actionlint"), str(wf)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", str(wf)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No findings to report" in p.stdout + p.stderr
    doc = yaml.safe_load(wf.read_text())
    assert doc["env"]["RELEASE_CONFIG"] == "release.prod.toml"
    assert doc["permissions"] == {} and list(doc["jobs"]) == [
        "build",
        "attest",
        "canary",
        "promote",
    ]
    for name, job in doc["jobs"].items():
        uses = [s["uses"] for s in job["steps"] if "uses" in s]
        assert ACTION in uses, name
        assert all(re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", u) for u in uses), name
        runs = " ".join(s.get("run", "") for s in job["steps"])
        assert ".venv" not in runs and ".ci/" not in runs
        if name != "build":
            assert job["env"]["DIGEST"] == "${{ needs.build.outputs.digest }}"
    assert doc["jobs"]["promote"]["environment"] == "production"
    assert f"- uses: {ACTION} # lambda-release 0.1.0\n" in wf.read_text()


def test_the_default_action_ref_is_the_commit_this_release_comes_from(tmp_path: Path) -> None:
    from release import _build

    repo = _adopter(tmp_path)
    r = run_cli("init", "--package", "app", *MODEL, "--json", cwd=repo)
    assert r.code == 0, r.stderr
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    commit = _build.COMMIT or head
    assert json.loads(r.stdout)["action_ref"] == f"{_build.REPOSITORY}@{commit}"


def test_config_in_a_subdirectory(tmp_path: Path) -> None:
    """The config's paths are relative to it; workflow and .gitignore go to the repository
    root, and the workflow's RELEASE_CONFIG names the config from there."""
    import yaml

    from release.config import load

    top = tmp_path / "mono"
    _git_init(top)
    _write(top / "svc" / "app" / "__init__.py", "")
    _write(top / "svc" / "app" / "h.py", "def lambda_handler(e, c):\n    pass\n")
    r = run_cli("init", "--package", "app", *MODEL, "--action-ref", ACTION,
                "--config", "svc/release.toml", cwd=top)  # fmt: skip
    assert r.code == 0, r.stderr
    assert load(top / "svc" / "release.toml").functions == {"h": "app.h.lambda_handler"}
    assert (top / "svc" / "model" / "canary.jsonl").is_file()
    assert (top / "svc" / "requirements.in").is_file() and (top / ".gitignore").is_file()
    wf = yaml.safe_load((top / ".github" / "workflows" / "release.yml").read_text())
    assert wf["env"]["RELEASE_CONFIG"] == "svc/release.toml"
    assert "wrote svc/release.toml" in r.stderr.splitlines()


def test_a_venv_inside_another_repository_lends_no_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed (no built-in commit) under some repository's .venv: that repository's
    HEAD is not the tool's commit, so --action-ref is asked for."""
    from types import SimpleNamespace

    from release.errors import UsageError
    from release.init import repo

    other = tmp_path / "other"
    _git_init(other)
    subprocess.run(
        ["git", "-C", str(other), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
         "commit", "-q", "--allow-empty", "-m", "x"],
        check=True,
    )  # fmt: skip
    fake = other / ".venv" / "lib" / "site-packages" / "release" / "_build.py"
    _write(fake, "")
    monkeypatch.setattr(
        repo, "_build", SimpleNamespace(COMMIT=None, REPOSITORY="o/r", __file__=str(fake))
    )
    with pytest.raises(UsageError, match=r"pass --action-ref OWNER/REPO@SHA"):
        repo.default_action_ref()
    monkeypatch.setattr(
        repo, "_build", SimpleNamespace(COMMIT="c" * 40, REPOSITORY="o/r", __file__=str(fake))
    )
    assert repo.default_action_ref() == "o/r@" + "c" * 40


# --- refusals: exit 2, one line, nothing written ------------------------------------------
def _refused(r, line: str) -> None:  # type: ignore[no-untyped-def]
    assert r.code == 2, r.stderr
    assert r.stderr.splitlines() == [f"release: error: {line}"]


def test_outside_a_git_repository_is_one_line(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    _write(plain / "app" / "__init__.py", "")
    env = {"GIT_CEILING_DIRECTORIES": str(tmp_path)}
    r = run_cli("init", "--package", "app", *MODEL, cwd=plain, env=env)
    _refused(
        r,
        f"release init works in a git repository: {plain.resolve()} is not in one (git init first)",
    )
    assert sorted(p.name for p in plain.iterdir()) == ["app"]


def test_git_missing_is_the_same_line(tmp_path: Path) -> None:
    repo = _adopter(tmp_path)
    r = run_cli(
        "init", "--package", "app", *MODEL, cwd=repo, env={"PATH": str(tmp_path / "nothing")}
    )
    _refused(
        r,
        f"release init works in a git repository: {repo.resolve()} is not in one (git init first)",
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--model-path", "m", *MODEL],
            "give exactly one of --model-path DIR or --model-repo ORG/NAME",
        ),
        ([], "give exactly one of --model-path DIR or --model-repo ORG/NAME"),
        (["--model-path", "m", "--revision", "v1"], "--revision applies to --model-repo only"),
        (
            [*MODEL, "--action-ref", "acme/lambda-release@v1"],
            "--action-ref 'acme/lambda-release@v1' is not OWNER/REPO@SHA with the full 40-hex "
            "commit (a tag or a branch can move)",
        ),
        (
            [*MODEL, "--action-ref", "acme@" + "a" * 40],
            f"--action-ref 'acme@{'a' * 40}' is not OWNER/REPO@SHA with the full 40-hex "
            "commit (a tag or a branch can move)",
        ),
        (
            [*MODEL, "--base", "public.ecr.aws/lambda/python:3.11"],
            "--base 'public.ecr.aws/lambda/python:3.11' is not REPO@sha256:<64 hex>: a base is "
            "pinned by digest (a tag is refused)",
        ),
        (
            [*MODEL, "--requirements", "requirements.in"],
            "--requirements names the hash-pinned lock (e.g. requirements.lock); "
            "requirements.in is written next to it",
        ),
        (
            [*MODEL, "--corpus", "../outside.jsonl"],
            "--corpus '../outside.jsonl': give a file path relative to the config's directory, "
            "without `..`",
        ),
    ],
)
def test_bad_flags_are_one_line(tmp_path: Path, args: list[str], line: str) -> None:
    repo = _adopter(tmp_path)
    before = _tree(repo)
    _refused(run_cli("init", "--package", "app", *args, cwd=repo), line)
    assert _tree(repo) == before


def test_a_package_without_a_handler_names_package(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    _git_init(repo)
    _write(repo / "lib" / "__init__.py", "")
    _write(repo / "lib" / "util.py", "def helper():\n    pass\n")
    _refused(
        run_cli("init", "--package", "lib", *MODEL, "--action-ref", ACTION, cwd=repo),
        "--package lib: no module in lib/ defines a top-level `def lambda_handler` or "
        "`def handler`",
    )
    assert sorted(p.name for p in repo.iterdir()) == [".git", "lib"]


def test_a_package_must_exist_and_be_a_package(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    _git_init(repo)
    _refused(
        run_cli("init", "--package", "app", *MODEL, cwd=repo),
        f"--package app: no directory app/ in {repo.resolve()}",
    )
    _write(repo / "app" / "h.py", "def handler(e, c):\n    pass\n")
    _refused(
        run_cli("init", "--package", "app", *MODEL, cwd=repo),
        "--package app: app/__init__.py is missing; the code package must be a regular "
        "Python package",
    )


def test_a_config_error_names_the_key_and_writes_nothing(tmp_path: Path) -> None:
    repo = _adopter(tmp_path)
    before = _tree(repo)
    r = _init(repo, "--predict", "not a callable")
    assert r.code == 2
    assert r.stderr.splitlines()[0].startswith("release: error: release.toml: [code].predict: ")
    assert r.stderr.splitlines()[-1] == "  (from the flags given; nothing was written)"
    assert _tree(repo) == before


# --- in-process: naming and remotes ---------------------------------------------------------
def test_modules_sharing_a_name_are_named_by_their_path(tmp_path: Path) -> None:
    from release.init.discover import discover

    _write(tmp_path / "app" / "__init__.py", "def handler(e, c):\n    pass\n")
    for sub in ("api", "jobs"):
        _write(tmp_path / "app" / sub / "score.py", "def lambda_handler(e, c):\n    pass\n")
    _write(tmp_path / "app" / "broken.py", "def handler(:\n")  # skipped with a warning
    assert discover(tmp_path / "app", "app") == {
        "api_score": "app.api.score.lambda_handler",
        "app": "app.handler",
        "jobs_score": "app.jobs.score.lambda_handler",
    }


@pytest.mark.parametrize(
    ("url", "repo"),
    [
        ("https://github.com/acme/ml-platform.git", "acme/ml-platform"),
        ("https://github.com/acme/ml-platform", "acme/ml-platform"),
        ("git@github.com:acme/ml-platform.git", "acme/ml-platform"),
        ("ssh://git@github.com/acme/ml-platform.git", "acme/ml-platform"),
        ("https://token@github.com/acme/ml.platform/", "acme/ml.platform"),
        ("https://gitlab.com/acme/ml-platform.git", None),
        ("/srv/git/ml-platform", None),
        (None, None),
    ],
)
def test_github_repository_of_a_remote(url: str | None, repo: str | None) -> None:
    from release.gitremote import github_repository

    assert github_repository(url) == repo


def test_templates_are_package_data() -> None:
    """The wheel carries the templates: they are read from the package, not the checkout."""
    from importlib import resources

    names = {p.name for p in resources.files("release.init").joinpath("templates").iterdir()}
    assert names >= {"release.toml.j2", "release.yml.j2", "canary.jsonl.j2", "requirements.in.j2"}
    assert os.path.isfile(REPO / "release" / "init" / "templates" / "release.yml.j2")


@pytest.mark.parametrize(
    ("files", "output", "why"),
    [
        (
            {"config.json": {"id2label": {"0": "ROUTINE", "1": "URGENT", "2": "CRITICAL"}}},
            "label",
            "config.json id2label: ROUTINE, URGENT, CRITICAL",
        ),
        (
            {
                "config.json": {
                    "problem_type": "multi_label_classification",
                    "id2label": {"0": "toxic", "1": "insult"},
                }
            },
            "multilabel",
            "problem_type multi_label_classification (toxic, insult)",
        ),
        ({"config.json": {"problem_type": "regression", "num_labels": 1}}, "score", "regression"),
        ({"config.json": {"id2label": {"0": "LABEL_0"}}}, "score", "regression"),
        ({"config.json": {}, "modules.json": []}, "vector", "sentence-transformers"),
        ({"weights.bin": "x"}, "label", "no readable config.json"),
    ],
)
def test_the_output_type_is_read_from_a_local_model(
    tmp_path: Path, files: dict[str, object], output: str, why: str
) -> None:
    """`[canary].output` from the model's own files (config.json problem_type and
    id2label, a sentence-transformers modules.json); the line says why."""
    from release.config import load

    repo = _adopter(tmp_path)
    for name, doc in files.items():
        _write(repo / "weights" / name, doc if isinstance(doc, str) else json.dumps(doc))
    r = run_cli(
        "init", "--package", "app", "--model-path", "weights", "--action-ref", ACTION, cwd=repo
    )
    assert r.code == 0, r.stderr
    assert load(repo / "release.toml").canary.output == output
    [line] = [
        x for x in (repo / "release.toml").read_text().splitlines() if x.startswith("output =")
    ]
    assert line.startswith(f'output = "{output}"   # ') and why in line, line
