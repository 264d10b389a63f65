"""`release init`: start an adopter's repository - config, corpus and lock templates, the
release workflow.

One entry point, `init(Options) -> InitResult`. In an existing git work tree it writes a
commented `release.toml` (`[functions]` found in `--package` by `release.init.discover`,
validated with `release.config.parse` before anything is written), a canary corpus
template, `requirements.in` next to a requirements lock that does not exist yet (with the
Lambda runtime interface client), `.release/` in `.gitignore`, and
`.github/workflows/release.yml` pinned to the release tool's Action by commit. A file that
exists is kept unless `force`; an existing `release.toml` without `force` is an error.

The templates are package data (`templates/`, read through `jinja2.PackageLoader`): this
directory is a package so that a wheel carries them.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import jinja2

from release import __version__
from release.errors import ConfigError, UsageError
from release.init.discover import discover
from release.init.repo import default_action_ref, origin_repository, repository_root

#: the default branch the workflow releases from and the keyless identity names
BRANCH = "main"
#: a placeholder base: Lambda's public Python base, with a digest that must be replaced
PLACEHOLDER_BASE = f"public.ecr.aws/lambda/python:3.11@sha256:{'0' * 64}"
WORKFLOW = ".github/workflows/release.yml"
#: what `.gitignore` gains: local state, the OCI registry, signing keys
GITIGNORE = "# release: local state, the OCI layout registry, signing keys\n.release/\n"
PYTHON = "3.11"

_ACTION_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}@[0-9a-fA-F]{40}")
_BASE = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")
_WORKFLOW_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")

Action = Literal["wrote", "overwrote", "kept", "appended"]


@dataclass(frozen=True)
class Options:
    """What `release init` was asked for (the CLI's flags; paths relative to the config's
    directory, as they are written into it, except `ci_config`: relative to the repository
    root, where the workflow runs)."""

    config: Path
    package: str
    model_path: str | None = None
    model_repo: str | None = None
    revision: str | None = None
    include: tuple[str, ...] = ("*",)
    model_dir: str = "/opt/model"
    lock: str = "model/model.lock.json"
    corpus: str = "model/canary.jsonl"
    requirements: str = "requirements.lock"
    predict: str | None = None
    base: str | None = None
    action_ref: str | None = None
    ci_config: str | None = None
    force: bool = False


@dataclass(frozen=True)
class FileAction:
    """One file and what init did with it; `path` is relative to the repository root."""

    path: str
    action: Action
    why: str = ""


@dataclass(frozen=True)
class InitResult:
    repository: Path
    config: str
    files: tuple[FileAction, ...]
    functions: Mapping[str, str]
    action_ref: str
    next_steps: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "files": [
                {"path": f.path, "action": f.action, **({"why": f.why} if f.why else {})}
                for f in self.files
            ],
            "functions": dict(self.functions),
            "action_ref": self.action_ref,
            "next_steps": list(self.next_steps),
        }


# --- options ------------------------------------------------------------------------------
def _relative(flag: str, value: str) -> str:
    """A path init writes into release.toml and creates: relative, inside the repository."""
    p = PurePosixPath(value)
    if p.is_absolute() or ".." in p.parts or not p.parts or value.endswith("/"):
        raise UsageError(
            f"{flag} {value!r}: give a file path relative to the config's directory, without `..`"
        )
    return p.as_posix()


def _check(opts: Options) -> None:
    if (opts.model_path is None) == (opts.model_repo is None):
        raise UsageError("give exactly one of --model-path DIR or --model-repo ORG/NAME")
    if opts.revision is not None and opts.model_repo is None:
        raise UsageError("--revision applies to --model-repo only")
    if opts.action_ref is not None and not _ACTION_REF.fullmatch(opts.action_ref):
        raise UsageError(
            f"--action-ref {opts.action_ref!r} is not OWNER/REPO@SHA with the full 40-hex "
            "commit (a tag or a branch can move)"
        )
    if opts.base is not None and not _BASE.fullmatch(opts.base):
        raise UsageError(
            f"--base {opts.base!r} is not REPO@sha256:<64 hex>: a base is pinned by digest "
            "(a tag is refused)"
        )
    if not opts.package.isidentifier():
        raise UsageError(
            f"--package {opts.package!r} is not a Python package name (a directory next to "
            "the config: letters, digits and _, not starting with a digit)"
        )
    for flag, value in (
        ("--lock", opts.lock),
        ("--corpus", opts.corpus),
        ("--requirements", opts.requirements),
    ):
        _relative(flag, value)
    if PurePosixPath(opts.requirements).name == "requirements.in":
        raise UsageError(
            "--requirements names the hash-pinned lock (e.g. requirements.lock); "
            "requirements.in is written next to it"
        )
    if opts.ci_config is not None:
        _workflow_path("--ci-config", opts.ci_config)


def _workflow_path(flag: str, value: str) -> str:
    if not _WORKFLOW_PATH.fullmatch(value) or ".." in PurePosixPath(value).parts:
        raise UsageError(
            f"{flag} {value!r}: the workflow's RELEASE_CONFIG must be a plain path relative "
            "to the repository root (letters, digits, _ . / -)"
        )
    return value


def _package_dir(root: Path, package: str) -> Path:
    d = root / package
    if not d.is_dir():
        raise UsageError(f"--package {package}: no directory {package}/ in {root}")
    if not (d / "__init__.py").is_file():
        raise UsageError(
            f"--package {package}: {package}/__init__.py is missing; the code package must "
            "be a regular Python package"
        )
    return d


# --- rendering ----------------------------------------------------------------------------
def _toml(value: Any) -> str:
    """A TOML value for a string or a list of strings (JSON's string escapes are TOML's)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


@cache
def _env(workflow: bool) -> jinja2.Environment:
    """Text templates: no autoescape. The workflow uses << >> for its variables so that
    GitHub's own `${{ }}` expressions stay as they are."""
    delimiters: dict[str, str] = (
        {
            "variable_start_string": "<<",
            "variable_end_string": ">>",
            "block_start_string": "<%",
            "block_end_string": "%>",
            "comment_start_string": "<#",
            "comment_end_string": "#>",
        }
        if workflow
        else {}
    )
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("release.init", "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        **delimiters,  # type: ignore[arg-type]
    )
    env.filters["toml"] = _toml
    return env


def _render(name: str, **values: Any) -> str:
    return _env(name.endswith(".yml.j2")).get_template(name).render(**values)


def guess_output(model_dir: Path | None) -> tuple[str, str]:
    """`[canary].output` from a local model's own files, and why (a hub model is not
    fetched by init: "label", to be checked). A sentence-transformers model (modules.json)
    gives a vector; config.json's `problem_type` multi_label_classification a multilabel,
    regression (or a single output) a score; an id2label of two or more labels a label."""
    if model_dir is None:
        return "label", "the hub model is not read by init: check it"
    if (model_dir / "modules.json").is_file() or (
        model_dir / "config_sentence_transformers.json"
    ).is_file():
        return "vector", "a sentence-transformers model (modules.json): an embedding per input"
    try:
        cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "label", "no readable config.json in the model directory: check it"
    if not isinstance(cfg, dict):
        return "label", "config.json is not an object: check it"
    raw = cfg.get("id2label")
    labels: dict[Any, Any] = raw if isinstance(raw, dict) else {}
    names = ", ".join(str(v) for _, v in sorted(labels.items(), key=lambda kv: str(kv[0]))[:6])
    problem = cfg.get("problem_type")
    if problem == "multi_label_classification":
        return "multilabel", f"config.json: problem_type multi_label_classification ({names})"
    if problem == "regression" or cfg.get("num_labels") == 1 or len(labels) == 1:
        return "score", "config.json: a regression (one output per input)"
    if len(labels) >= 2:
        return "label", f"config.json id2label: {names}"
    return "label", "config.json names no labels: check it"


def render_config(opts: Options, functions: Mapping[str, str], github_repo: str) -> str:
    """The release.toml text; ConfigError (naming the key) when it would not load."""
    from release import config

    model_dir = opts.config.parent / opts.model_path if opts.model_path is not None else None
    output, output_why = guess_output(model_dir)
    text = _render(
        "release.toml.j2",
        version=__version__,
        output=output,
        output_why=output_why,
        model_repo=opts.model_repo,
        model_path=opts.model_path,
        revision=opts.revision or "main",
        include=list(opts.include),
        lock=opts.lock,
        base=opts.base or PLACEHOLDER_BASE,
        base_placeholder=opts.base is None,
        requirements=opts.requirements,
        model_dir=opts.model_dir,
        functions=dict(functions),
        package=opts.package,
        predict=opts.predict,
        github_repo=github_repo,
        branch=BRANCH,
        corpus=opts.corpus,
    )
    try:
        config.parse(tomllib.loads(text), opts.config)
    except ConfigError as exc:
        raise ConfigError(
            exc.message, details=[*exc.details, "(from the flags given; nothing was written)"]
        ) from None
    return text


def render_workflow(action_ref: str, config_path: str) -> str:
    return _render(
        "release.yml.j2",
        action_ref=action_ref,
        version=__version__,
        config=config_path,
        branch=BRANCH,
    )


def _compile_command(source: str, lock: str) -> str:
    return (
        f"uv pip compile {source} --generate-hashes --python-version {PYTHON} "
        f"--python-platform x86_64-manylinux_2_28 -o {lock}"
    )


# --- writing ------------------------------------------------------------------------------
def _rel(path: Path, top: Path) -> str:
    try:
        return path.relative_to(top).as_posix()
    except ValueError:
        return str(path)


def _gitignore_has(text: str) -> bool:
    return any(
        line.strip() in (".release", ".release/", "/.release", "/.release/")
        for line in text.splitlines()
    )


def init(opts: Options) -> InitResult:
    """Write the adopter's starting files (see the module docstring); nothing is written
    when a flag is wrong, release.toml exists (without force) or the config would not
    load."""
    from release._io import atomic_write_bytes

    root = opts.config.absolute().parent
    if not root.is_dir():
        raise UsageError(f"--config {opts.config}: directory {root} does not exist")
    root = root.resolve()
    cfg_path = root / opts.config.name
    top = repository_root(root)
    _check(opts)
    shown_cfg = _rel(cfg_path, top)
    if cfg_path.exists() and not opts.force:
        raise UsageError(f"{shown_cfg} exists; --force overwrites it")
    functions = discover(_package_dir(root, opts.package), opts.package)
    action_ref = (opts.action_ref or default_action_ref()).lower()
    github_repo = origin_repository(top) or "OWNER/REPO"
    ci_config = opts.ci_config or _workflow_path("--config", shown_cfg)

    # everything is rendered (and release.toml validated) before the first write
    lock_path = root / opts.requirements
    req_in = lock_path.with_name("requirements.in")
    planned: list[tuple[Path, str | None]] = [
        (cfg_path, render_config(opts, functions, github_repo)),
        (root / opts.corpus, _render("canary.jsonl.j2")),
    ]
    if lock_path.exists():  # reported as kept; a lock is compiled, never templated
        planned.append((lock_path, None))
    else:
        source, lock = _rel(req_in, top), _rel(lock_path, top)
        planned.append(
            (req_in, _render("requirements.in.j2", command=_compile_command(source, lock)))
        )
    planned.append((top / WORKFLOW, render_workflow(action_ref, ci_config)))

    files: list[FileAction] = []
    for path, text in planned:
        shown = _rel(path, top)
        existed = path.exists()
        if text is None or (existed and not opts.force):
            files.append(FileAction(shown, "kept", "exists"))
            continue
        atomic_write_bytes(path, text.encode())
        files.append(FileAction(shown, "overwrote" if existed else "wrote"))
    files.append(_gitignore(top / ".gitignore"))

    return InitResult(
        repository=top,
        config=shown_cfg,
        files=tuple(files),
        functions=functions,
        action_ref=action_ref,
        next_steps=_next_steps(opts, top, root, cfg_path, lock_path, req_in, ci_config),
    )


def _gitignore(path: Path) -> FileAction:
    """Append `.release/` unless a line already ignores it; never removes anything."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = None
    if text is not None and _gitignore_has(text):
        return FileAction(".gitignore", "kept", "already ignores .release/")
    sep = "" if not text or text.endswith("\n") else "\n"
    with path.open("a") as f:
        f.write(sep + GITIGNORE)
    return FileAction(".gitignore", "appended" if text is not None else "wrote")


def _next_steps(
    opts: Options,
    top: Path,
    root: Path,
    cfg_path: Path,
    lock_path: Path,
    req_in: Path,
    ci_config: str,
) -> tuple[str, ...]:
    here = Path.cwd().resolve()
    cfg = "" if cfg_path == here / "release.toml" else f" --config {_rel(cfg_path, here)}"
    steps = [f"release model pin{cfg}   # writes {opts.lock}; commit it"]
    steps.append(
        f"fill {_rel(root / opts.corpus, top)} with a few hundred real inputs "
        "(the canary compares the model's outputs on them)"
    )
    if not lock_path.exists():
        steps.append(_compile_command(_rel(req_in, top), _rel(lock_path, top)))
    if opts.base is None:
        steps.append("replace [image].base's placeholder digest (or make one: release base)")
    if opts.predict is None:
        steps.append("set [code].predict: the canary's entry point in your package")
    steps.append(f"release pipeline --env local{cfg}   # every stage, offline")
    steps.append(
        f"for CI: {ci_config} needs keyless [signing], an ECR registry and "
        f"[environments.prod] ({WORKFLOW} says what else)"
    )
    return tuple(steps)


__all__ = [
    "FileAction",
    "InitResult",
    "Options",
    "default_action_ref",
    "init",
]
