"""The values `release/iam/scan.py` gives expressions (strings from literals and the
environment, boto3 objects, package definitions) and what a scan finds (`Call`, `Finding`)."""

from __future__ import annotations

import ast
from dataclasses import dataclass


# --- values ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unknown:
    why: str


@dataclass(frozen=True)
class Lit:
    value: object


@dataclass(frozen=True)
class Env:
    """`os.environ[VAR]` (default None) or `os.environ.get(VAR, DEFAULT)`."""

    var: str
    default: str | None


@dataclass(frozen=True)
class Joined:
    parts: tuple[Value, ...]


@dataclass(frozen=True)
class Ext:
    """A name from outside the package (`boto3.session.Session`, `os.environ`)."""

    path: str


@dataclass(frozen=True)
class Client:
    service: Value


@dataclass(frozen=True)
class Resource:
    service: str
    type: str  # "" for the service resource
    ids: tuple[tuple[str, Value], ...] = ()


@dataclass(frozen=True)
class Collection:
    owner: Resource
    name: str  # hasMany key


@dataclass(frozen=True)
class Paginator:
    service: str
    op: str
    waiter: bool = False


@dataclass(frozen=True)
class Method:
    obj: Value
    name: str


@dataclass(frozen=True)
class Def:
    """A function or class of the package (or a nested def)."""

    module: str
    name: str
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


@dataclass(frozen=True)
class Instance:
    cls: Def
    fields: tuple[tuple[str, Value], ...] | None  # None: built elsewhere (from a type hint)


@dataclass(frozen=True)
class Mod:
    name: str


@dataclass(frozen=True)
class Inert:
    """An object with no AWS behaviour (a batch writer's `put_item` is its owner's call)."""


Value = (
    Unknown
    | Lit
    | Env
    | Joined
    | Ext
    | Client
    | Resource
    | Collection
    | Paginator
    | Method
    | Def
    | Instance
    | Mod
    | Inert
)
AWS_OBJECTS = (Client, Resource, Collection, Paginator)


# --- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    service: str
    op: str
    params: tuple[tuple[str, Value], ...]
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Finding:
    """A call (or a handed-off boto3 object) whose action cannot be told."""

    file: str
    line: int
    what: str
    why: str
    service: str | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"
