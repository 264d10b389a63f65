"""The `release` commands each job of a GitHub Actions workflow runs.

Every `run:` script of a job (and of a local composite action it `uses: ./...`) is split
into shell commands; a command whose program is `release` is an `Invocation` with its
arguments. `$VAR`/`${VAR}` arguments are filled from the step's, job's and workflow's `env:`
when those are literals (an `${{ ... }}` expression is left as it is). Nothing is run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.errors import ConfigError

_SEP = {";", "&&", "||", "|", "(", ")", "&", "$(", "`", "{", "}", "!", "|&", ";;"}
_KEYWORDS = {"then", "do", "else", "elif", "if", "while", "until", "time", "exec", "command"}
_REDIRECT = re.compile(r"^[0-9]*[<>]")
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_VAR = re.compile(r"\$(?:\{(?P<b>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<n>[A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Invocation:
    job: str
    step: str  # the step's name, or its position
    argv: tuple[str, ...]  # after `release`, variables filled where known
    env: tuple[tuple[str, str], ...]  # the literal env the step runs with

    @property
    def text(self) -> str:
        return "release " + " ".join(self.argv)


@dataclass(frozen=True)
class Job:
    name: str
    invocations: tuple[Invocation, ...]
    env: tuple[tuple[str, str], ...]


def load(path: Path) -> dict[str, Job]:
    """The workflow's jobs, in order, with the `release` commands each runs."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"workflow {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"workflow {path}: not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), dict):
        raise ConfigError(f"workflow {path}: no jobs: mapping")
    wf_env = _literal_env(doc.get("env"))
    out: dict[str, Job] = {}
    for name, job in doc["jobs"].items():
        if not isinstance(job, dict):
            raise ConfigError(f"workflow {path}: jobs.{name} is not a mapping")
        env = {**wf_env, **_literal_env(job.get("env"))}
        inv: list[Invocation] = []
        for i, step in enumerate(job.get("steps") or [], 1):
            if not isinstance(step, dict):
                continue
            label = str(step.get("name") or step.get("id") or f"step {i}")
            senv = {**env, **_literal_env(step.get("env"))}
            scripts: list[str] = []
            if isinstance(step.get("run"), str):
                scripts.append(step["run"])
            uses = step.get("uses")
            if isinstance(uses, str) and uses.startswith("./"):
                scripts += _local_action(path, uses)
            for script in scripts:
                for argv in commands(script):
                    filled = tuple(_fill(a, senv) for a in argv)
                    inv.append(Invocation(str(name), label, filled, tuple(sorted(senv.items()))))
        out[str(name)] = Job(str(name), tuple(inv), tuple(sorted(env.items())))
    return out


def _literal_env(v: Any) -> dict[str, str]:
    if not isinstance(v, dict):
        return {}
    return {
        str(k): str(x) for k, x in v.items() if isinstance(x, (str, int)) and "${{" not in str(x)
    }


def _fill(arg: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m["b"] or m["n"], m[0]), arg)


def _local_action(workflow: Path, uses: str) -> list[str]:
    """The run scripts of a local composite action (`uses: ./` is the repository root)."""
    import yaml

    root = workflow.parent.parent.parent  # .github/workflows/X.yml -> the repository
    base = root / uses.split("@", 1)[0]
    for name in ("action.yml", "action.yaml"):
        if (base / name).is_file():
            doc = yaml.safe_load((base / name).read_text(encoding="utf-8")) or {}
            steps = (doc.get("runs") or {}).get("steps") or []
            return [
                s["run"] for s in steps if isinstance(s, dict) and isinstance(s.get("run"), str)
            ]
    return []


def commands(script: str) -> list[tuple[str, ...]]:
    """The arguments of every `release` command in a shell script (command position only:
    after a separator, `$(`, a keyword or variable assignments; a quoted "release" is text)."""
    text = re.sub(r"\\\n", " ", script)
    out: list[tuple[str, ...]] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        lex = shlex.shlex(line.replace("$(", " $( "), posix=True, punctuation_chars=";&|(){}")
        lex.whitespace_split = True
        lex.commenters = "#"
        try:
            tokens = list(lex)
        except ValueError:  # an unbalanced quote: the line is not a whole command
            continue
        at_start = True
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok in _SEP or tok == "$":
                at_start = True
            elif at_start and (tok in _KEYWORDS or _ASSIGN.match(tok)):
                pass
            elif at_start and tok == "release":
                args: list[str] = []
                i += 1
                while i < len(tokens) and tokens[i] not in _SEP:
                    t = tokens[i]
                    if _REDIRECT.match(t):
                        i += 1
                        if t.endswith((">", "<")):  # its target is the next word (`2>&1`: two)
                            i += 2 if i < len(tokens) and tokens[i] == "&" else 1
                        continue
                    if t.isdigit() and i + 1 < len(tokens) and _REDIRECT.match(tokens[i + 1]):
                        i += 1
                        continue
                    args.append(t)
                    i += 1
                out.append(tuple(args))
                at_start = False
                continue
            else:
                at_start = False
            i += 1
    return out
