"""Find the Lambda handlers of an adopter's code package without importing it.

`release init` reads every module of `[code].package` with `ast` (the adopter's code is
never run): a module with a top-level `def lambda_handler` or `def handler` is one
function of the platform, named after the module. The result is `[functions]`.
"""

from __future__ import annotations

import ast
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from release.errors import UsageError

log = logging.getLogger(__name__)

#: the handler names looked for, preferred first (Lambda Python handlers are plain `def`s)
HANDLER_NAMES = ("lambda_handler", "handler")
#: directories never searched: byte code and tests
SKIP_DIRS = frozenset({"__pycache__", "tests"})


@dataclass(frozen=True)
class Handler:
    """One handler: the dotted module (from the package) and the function in it."""

    module: str
    function: str

    @property
    def dotted(self) -> str:
        """What `[functions]` holds and the image's CMD is: `package.module.function`."""
        return f"{self.module}.{self.function}"


def _modules(package_dir: Path, package: str) -> list[tuple[Path, str]]:
    """(file, dotted module) of every importable module under the package, sorted."""
    found: list[tuple[Path, str]] = []
    for here, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(
            d for d in dirs if d not in SKIP_DIRS and not d.startswith(".") and d.isidentifier()
        )
        rel = Path(here).relative_to(package_dir).parts
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext != ".py" or not stem.isidentifier() or _is_test(stem):
                continue
            parts = [package, *rel] + ([] if stem == "__init__" else [stem])
            found.append((Path(here) / name, ".".join(parts)))
    return found


def _is_test(stem: str) -> bool:
    return stem == "conftest" or stem.startswith("test_") or stem.endswith("_test")


def _handler_in(path: Path) -> str | None:
    """The preferred handler name defined at the top level of the file, if any. A file
    that is not valid Python is skipped with a warning (it is never imported here)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        log.warning("skipped %s: not valid Python%s", path, where)
        return None
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return next((h for h in HANDLER_NAMES if h in defined), None)


def handlers(package_dir: Path, package: str) -> list[Handler]:
    """Every module of the package with a handler, in path order."""
    out = []
    for path, module in _modules(package_dir, package):
        fn = _handler_in(path)
        if fn is not None:
            out.append(Handler(module, fn))
    return out


def function_names(found: list[Handler]) -> dict[str, str]:
    """function name -> handler: the module's name; where two modules share a name, each
    of them is named by its dotted path under the package with `_` (api.scorer ->
    api_scorer)."""
    stems: dict[str, list[Handler]] = {}
    for h in found:
        stems.setdefault(h.module.rsplit(".", 1)[-1], []).append(h)
    named: dict[str, str] = {}
    for stem, group in stems.items():
        for h in group:
            name = stem if len(group) == 1 else "_".join(h.module.split(".")[1:]) or stem
            if name in named:
                raise UsageError(
                    f"modules {named[name].rsplit('.', 1)[0]} and {h.module} both give the "
                    f"function name {name!r}: rename one module"
                )
            named[name] = h.dotted
    return dict(sorted(named.items()))


def discover(package_dir: Path, package: str) -> dict[str, str]:
    """`[functions]` for the package: every module with a top-level `lambda_handler` (or
    else `handler`); UsageError naming --package when there is none."""
    found = handlers(package_dir, package)
    if not found:
        raise UsageError(
            f"--package {package}: no module in {package}/ defines a top-level "
            f"`def {HANDLER_NAMES[0]}` or `def {HANDLER_NAMES[1]}`"
        )
    for h in found:
        log.debug("handler %s", h.dotted)
    return function_names(found)
