"""The AWS calls a function's handler can make, read from its code (ast; never imported).

From the handler's module, every module of the code package it references is followed
(`from pkg.x import y`, `import pkg.x as m`), and in them the functions and classes the
handler's code references, transitively. In that code each expression is given a value:
boto3 objects (`boto3.client(S)`, `boto3.resource(S)`, `boto3.session.Session()...`, a
resource's `.Table(...)`/`.Bucket(...)`/`.Queue(...)`/`.Object(...)`, paginators,
waiters, collections), strings (literals, `os.environ[...]`/`.get`/`os.getenv`, f-strings)
and what package functions return (a factory `def client(s): return boto3.client(s)`, a
settings object built from the environment), so `X.op(Param=...)` becomes a `Call` of an
API operation with its parameters' values. What it cannot follow is a `Finding`, never
dropped: a method that is no operation, a client of an unknown service, a boto3 object
handed to code outside the package.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release.iam import awsmodel
from release.iam.values import (
    AWS_OBJECTS,
    Call,
    Client,
    Collection,
    Def,
    Env,
    Ext,
    Finding,
    Inert,
    Instance,
    Joined,
    Lit,
    Method,
    Mod,
    Paginator,
    Resource,
    Unknown,
    Value,
)


@dataclass
class _Module:
    name: str
    file: str  # relative to the root
    tree: ast.Module
    defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]
    assigns: dict[str, list[ast.expr]]
    imports: dict[str, Value]  # local name -> Mod / Def-to-load / Ext
    refs: dict[str, tuple[str, str]]  # local name -> (package module, name) from `from m import n`


@dataclass
class _Frame:
    module: _Module
    func: ast.AST | None
    bound: dict[str, Value]
    assigns: dict[str, list[ast.expr]]
    stores: dict[str, list[ast.expr]]  # `NAME[...] = expr`
    params: dict[str, ast.arg]
    depth: int = 0
    busy: set[str] = field(default_factory=set)
    memo: dict[int, Value] = field(default_factory=dict)  # id(node) -> its value here


_MAX_DEPTH = 8


class Scanner:
    def __init__(self, root: Path, package: str, *, local_imports: bool = False) -> None:
        self.root, self.package = root, package
        #: also bind what functions import inside their bodies, module-wide (code that
        #: imports boto3 and its own modules where it uses them, as release itself does)
        self.local_imports = local_imports
        self.modules: dict[str, _Module | None] = {}
        self.calls: set[Call] = set()
        self.findings: set[Finding] = set()
        self._scanned: set[tuple[str, str | None]] = set()
        self._global_cache: dict[tuple[str, str], Value] = {}
        self._bound_scans: set[tuple[int, str]] = set()
        self._returned: dict[tuple[int, str], Value] = {}
        self._module_frames: dict[str, _Frame] = {}
        self._shapes: dict[
            int, tuple[dict[str, list[ast.expr]], dict[str, list[ast.expr]], dict[str, ast.arg]]
        ] = {}
        self._fields: dict[tuple[int, str], Value] = {}

    # --- modules -----------------------------------------------------------------------------
    def _file(self, module: str) -> Path | None:
        base = self.root.joinpath(*module.split("."))
        for p in (base.with_suffix(".py"), base / "__init__.py"):
            if p.is_file():
                return p
        return None

    def load(self, module: str) -> _Module | None:
        if module in self.modules:
            return self.modules[module]
        path = self._file(module)
        mod = None
        if path is not None:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            mod = _Module(module, path.relative_to(self.root).as_posix(), tree, {}, {}, {}, {})
            is_pkg = path.name == "__init__.py"
            body: list[ast.stmt] = []
            if self.local_imports:  # first: a module-level binding of the name wins
                body += [
                    n
                    for d in tree.body
                    if isinstance(d, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    for n in ast.walk(d)
                    if isinstance(n, (ast.Import, ast.ImportFrom))
                ]
            for st in [*body, *tree.body]:
                if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    mod.defs[st.name] = st
                elif isinstance(st, ast.Import):
                    for a in st.names:
                        if a.asname:
                            mod.imports[a.asname] = self._ref(a.name)
                        else:
                            top = a.name.split(".", 1)[0]
                            mod.imports[top] = self._ref(top)
                elif isinstance(st, ast.ImportFrom):
                    base = st.module or ""
                    if st.level:
                        parts = module.split(".")
                        parts = parts[: len(parts) - st.level + (1 if is_pkg else 0)]
                        base = ".".join([*parts, base] if base else parts)
                    for a in st.names:
                        local = a.asname or a.name
                        full = f"{base}.{a.name}"
                        if base.split(".", 1)[0] == self.package and self._file(full) is None:
                            mod.refs[local] = (base, a.name)
                        else:
                            mod.imports[local] = self._ref(full)
            _collect_assigns(tree.body, mod.assigns, top=True)
        self.modules[module] = mod
        return mod

    def _ref(self, dotted: str) -> Value:
        if dotted.split(".", 1)[0] == self.package and self._file(dotted) is not None:
            return Mod(dotted)
        return Ext(dotted)

    # --- reachability ------------------------------------------------------------------------
    def scan_module(
        self, module: str, unit: str | None = None, *, everything: bool = False
    ) -> None:
        """Scan the code the handler can run: the handler's whole module and, in the package
        modules it uses, the definitions it references (transitively) and their module-level
        code."""
        mod = self.load(module)
        if mod is None:
            return
        units: list[str | None] = [None, *mod.defs] if everything else [unit]
        for u in units:
            if (module, u) in self._scanned:
                continue
            self._scanned.add((module, u))
            if u is None:
                nodes: list[ast.AST] = [
                    st
                    for st in mod.tree.body
                    if not isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                ]
                nodes += [d for st in mod.defs.values() for d in st.decorator_list]
                frame = self._module_frame(mod)
            elif u in mod.defs:
                nodes = [mod.defs[u]]
                frame = self._frame(mod, mod.defs[u], {})
            else:
                continue
            for node in nodes:
                self._follow(mod, node)
                self._calls_in(node, frame)

    def _follow(self, mod: _Module, root: ast.AST) -> None:
        for node in ast.walk(root):
            if isinstance(node, ast.Name):
                if node.id in mod.defs:
                    self.scan_module(mod.name, node.id)
                elif node.id in mod.refs:
                    m, n = mod.refs[node.id]
                    self.scan_module(m, None)
                    self.scan_module(m, n)
                elif isinstance(v := mod.imports.get(node.id), Mod):
                    self.scan_module(v.name, None)
            elif isinstance(node, ast.Attribute):
                chain = _dotted(node)
                if chain is None:
                    continue
                head, *rest = chain.split(".")
                target = mod.imports.get(head)
                if isinstance(target, Mod) and rest:
                    name = target.name
                    for i, part in enumerate(rest):
                        if self._file(f"{name}.{part}") is not None:
                            name = f"{name}.{part}"
                            self.scan_module(name, None)
                            continue
                        self.scan_module(name, None)
                        self.scan_module(name, rest[i])
                        break

    def _calls_in(self, root: ast.AST, frame: _Frame) -> None:
        for node in ast.walk(root):
            if isinstance(node, ast.Call) or (
                isinstance(node, (ast.Attribute,)) and isinstance(node.ctx, ast.Load)
            ):
                self.eval(node, frame)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                # a boto3 object kept where the analysis does not follow it: say so
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                where = next(
                    (f"attribute {t.attr}" for t in targets if isinstance(t, ast.Attribute)), None
                )
                if where:
                    self._escapes(self.eval(node.value, frame), frame, node.lineno, where)
            elif isinstance(node, (ast.Dict, ast.List, ast.Tuple, ast.Set)) and isinstance(
                getattr(node, "ctx", ast.Load()), ast.Load
            ):
                items = node.values if isinstance(node, ast.Dict) else node.elts
                for item in items:
                    if isinstance(item, ast.Call):
                        self._escapes(self.eval(item, frame), frame, node.lineno, "a container")

    def _escapes(self, v: Value, f: _Frame, line: int, where: str) -> None:
        if isinstance(v, AWS_OBJECTS):
            self._find(
                f,
                line,
                f"{_describe(v)} stored in {where}",
                "its calls are not followed from there",
                _service(v),
            )

    # --- frames ------------------------------------------------------------------------------
    def _module_frame(self, mod: _Module) -> _Frame:
        if mod.name not in self._module_frames:
            self._module_frames[mod.name] = _Frame(
                mod, None, {}, mod.assigns, _stores(mod.tree.body), {}
            )
        return self._module_frames[mod.name]

    def _frame(
        self, mod: _Module, node: ast.AST, bound: dict[str, Value], depth: int = 0
    ) -> _Frame:
        if id(node) in self._shapes:
            assigns, stores, params = self._shapes[id(node)]
            return _Frame(mod, node, dict(bound), assigns, stores, params, depth)
        assigns = {}
        params = {}
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None:
                    params[arg.arg] = arg
            body = node.body if isinstance(node.body, list) else []
            _collect_assigns(body, assigns, top=False)
        elif isinstance(node, ast.ClassDef):
            _collect_assigns(node.body, assigns, top=False)
        body_ = getattr(node, "body", None)
        stores = _stores(body_ if isinstance(body_, list) else [])
        self._shapes[id(node)] = (assigns, stores, params)
        return _Frame(mod, node, dict(bound), assigns, stores, params, depth)

    # --- evaluation --------------------------------------------------------------------------
    def eval(self, node: ast.AST, f: _Frame) -> Value:
        if id(node) in f.memo:
            return f.memo[id(node)]
        try:
            value = self._eval(node, f)
        except RecursionError:
            value = Unknown("too deep to follow")
        f.memo[id(node)] = value
        return value

    def _eval(self, node: ast.AST, f: _Frame) -> Value:
        if isinstance(node, ast.Constant):
            return Lit(node.value)
        if isinstance(node, ast.Name):
            if node.id == "\0param":
                return Unknown("a parameter of a nested function")
            if node.id == "\0unknown":
                return Unknown("a loop or unpacked variable")
            return self._name(node.id, f, getattr(node, "lineno", 0))
        if isinstance(node, ast.Attribute):
            return self._attr(self.eval(node.value, f), node.attr, f, node)
        if isinstance(node, ast.Call):
            return self._call(node, f)
        if isinstance(node, ast.Subscript):
            base = self._eval(node.value, f)
            if isinstance(base, Ext) and base.path == "os.environ":
                key = self._eval(node.slice, f)
                if isinstance(key, Lit) and isinstance(key.value, str):
                    return Env(key.value, None)
            if isinstance(node.value, ast.Name) and node.value.id in f.stores:
                vals = [self._eval(e, f) for e in f.stores[node.value.id]]
                known = [v for v in vals if not isinstance(v, Unknown)]
                if known:
                    return known[-1]
            return Unknown("an item of a container")
        if isinstance(node, ast.JoinedStr):
            parts: list[Value] = []
            for v in node.values:
                parts.append(
                    self._eval(v.value, f)
                    if isinstance(v, ast.FormattedValue)
                    else self._eval(v, f)
                )
            return Joined(tuple(parts))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return Joined((self._eval(node.left, f), self._eval(node.right, f)))
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            vals = [self._eval(v, f) for v in node.values]
            return next((v for v in vals if not isinstance(v, Unknown)), vals[-1])
        if isinstance(node, ast.NamedExpr):
            return self._eval(node.value, f)
        if isinstance(node, ast.Await):
            return self._eval(node.value, f)
        return Unknown(f"a {type(node).__name__.lower()} expression")

    def _name(self, name: str, f: _Frame, line: int) -> Value:
        if name in f.bound:
            return f.bound[name]
        key = f"{id(f.func)}:{name}"
        if name in f.assigns and key not in f.busy:
            f.busy.add(key)
            try:
                vals = [self._eval(e, f) for e in f.assigns[name]]
            finally:
                f.busy.discard(key)
            known = [v for v in vals if not isinstance(v, Unknown)]
            value = known[-1] if known else vals[-1]
            f.bound[name] = value
            return value
        if name in f.params:
            return self._param(f.params[name], f)
        if f.func is not None:
            return self._global(f.module, name)
        return self._global(f.module, name)

    def _param(self, arg: ast.arg, f: _Frame) -> Value:
        """An unbound parameter: an instance of the package class its type hint names."""
        if arg.annotation is not None:
            ann = arg.annotation
            if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
                try:
                    ann = ast.parse(ann.value, mode="eval").body
                except SyntaxError:
                    ann = arg.annotation
            cls = self._eval(ann, self._module_frame(f.module))
            if isinstance(cls, Def) and isinstance(cls.node, ast.ClassDef):
                return Instance(cls, None)
        name = getattr(f.func, "name", "lambda")
        return Unknown(f"parameter {arg.arg} of {name}()")

    def _global(self, mod: _Module, name: str) -> Value:
        key = (mod.name, name)
        if key in self._global_cache:
            return self._global_cache[key]
        self._global_cache[key] = Unknown(f"{name} refers to itself")
        value: Value
        if name in mod.assigns:
            frame = self._module_frame(mod)
            vals = [self._eval(e, frame) for e in mod.assigns[name]]
            known = [v for v in vals if not isinstance(v, Unknown)]
            value = known[-1] if known else vals[-1]
        elif name in mod.defs:
            value = Def(mod.name, name, mod.defs[name])
        elif name in mod.refs:
            m, n = mod.refs[name]
            other = self.load(m)
            value = self._global(other, n) if other else Unknown(f"{m}.{n} not found")
        elif name in mod.imports:
            value = mod.imports[name]
        elif hasattr(builtins, name):
            value = Ext(f"builtins.{name}")
        else:
            value = Unknown(f"name {name}")
        self._global_cache[key] = value
        return value

    def _attr(self, base: Value, attr: str, f: _Frame, node: ast.AST) -> Value:
        if isinstance(base, Mod):
            sub = f"{base.name}.{attr}"
            if self._file(sub) is not None:
                return Mod(sub)
            mod = self.load(base.name)
            return self._global(mod, attr) if mod else Unknown(sub)
        if isinstance(base, Ext):
            return Ext(f"{base.path}.{attr}")
        if isinstance(base, Instance):
            return self._field(base, attr)
        if isinstance(base, Resource):
            return self._resource_attr(base, attr, f, node)
        if isinstance(base, (Client, Collection, Paginator, Inert)):
            return Method(base, attr)
        if isinstance(base, Def) and isinstance(base.node, ast.ClassDef):
            return Method(base, attr)
        if isinstance(base, Unknown):
            return base
        return Unknown(f"attribute {attr}")

    def _field(self, inst: Instance, attr: str) -> Value:
        if inst.fields is not None:
            for k, v in inst.fields:
                if k == attr:
                    return v
        # built elsewhere: where the package constructs the class and names this field
        key = (id(inst.cls.node), attr)
        if key not in self._fields:
            self._fields[key] = Unknown(f"{inst.cls.name}.{attr} refers to itself")
            self._fields[key] = self._built_field(inst.cls, attr)
        return self._fields[key]

    def _built_field(self, cls: Def, attr: str) -> Value:
        mod = self.load(cls.module)
        if mod is None:
            return Unknown(f"{cls.name}.{attr}")
        found: list[Value] = []
        for fn in [*mod.defs.values()]:
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == cls.name
                ):
                    frame = self._frame(mod, fn, {})
                    fields = self._construct(cls, node, frame)
                    found += [v for k, v in fields if k == attr]
        known = [v for v in found if not isinstance(v, Unknown)]
        if len(set(known)) == 1:
            return known[0]
        return Unknown(f"{cls.name}.{attr} ({'built in several ways' if known else 'not found'})")

    def _construct(self, cls: Def, call: ast.Call, f: _Frame) -> tuple[tuple[str, Value], ...]:
        assert isinstance(cls.node, ast.ClassDef)
        names = [
            st.target.id
            for st in cls.node.body
            if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)
        ]
        out = [(n, self._eval(a, f)) for n, a in zip(names, call.args, strict=False)]
        out += [(k.arg, self._eval(k.value, f)) for k in call.keywords if k.arg]
        return tuple(out)

    # --- calls -------------------------------------------------------------------------------
    def _call(self, node: ast.Call, f: _Frame) -> Value:
        fn = self.eval(node.func, f)
        args = [self.eval(a, f) for a in node.args if not isinstance(a, ast.Starred)]
        kwargs = {k.arg: self.eval(k.value, f) for k in node.keywords if k.arg}
        line = node.lineno
        if isinstance(fn, Ext):
            return self._ext_call(fn.path, args, kwargs, f, line)
        if isinstance(fn, Method):
            return self._method_call(fn, args, kwargs, f, line, node)
        if isinstance(fn, Def):
            if isinstance(fn.node, ast.ClassDef):
                return Instance(fn, self._construct(fn, node, f))
            return self._invoke(fn, args, kwargs, f, line)
        return Unknown("the result of a call")

    def _ext_call(
        self, path: str, args: list[Value], kwargs: dict[str, Value], f: _Frame, line: int
    ) -> Value:
        p = path.replace("boto3.session.Session", "boto3.Session")
        if p in ("boto3.Session", "boto3.session.Session"):
            return Ext("boto3.Session()")
        if p in ("boto3.client", "boto3.Session().client"):
            return Client(_arg(args, kwargs, 0, "service_name"))
        if p in ("boto3.resource", "boto3.Session().resource"):
            svc = _arg(args, kwargs, 0, "service_name")
            if isinstance(svc, Lit) and isinstance(svc.value, str):
                if awsmodel.resource_model(svc.value) is None:
                    self._find(f, line, f"boto3.resource({svc.value!r})", "no such resource API")
                    return Unknown("resource")
                return Resource(svc.value, "")
            self._find(f, line, "boto3.resource(...)", _why(svc, "the service name"))
            return Unknown("resource")
        if p in ("os.environ.get", "os.getenv"):
            var = _arg(args, kwargs, 0, "key")
            default = _arg(args, kwargs, 1, "default")
            if isinstance(var, Lit) and isinstance(var.value, str):
                d = default.value if isinstance(default, Lit) else None
                return Env(var.value, None if d is None else str(d))
            return Unknown("an environment variable named at run time")
        if p in ("builtins.str",) and args:
            return args[0]
        if p == "builtins.getattr" and args and isinstance(args[0], AWS_OBJECTS):
            name = args[1] if len(args) > 1 else Unknown("no name")
            if isinstance(name, Lit) and isinstance(name.value, str):
                return self._attr(args[0], name.value, f, ast.Constant(None))
            self._find(
                f,
                line,
                f"getattr({_describe(args[0])}, ...)",
                "a method named at run time",
                _service(args[0]),
            )
            return Unknown("getattr")
        if not p.startswith("builtins.") or p in ("builtins.setattr", "builtins.map"):
            for v in [*args, *kwargs.values()]:
                if isinstance(v, AWS_OBJECTS):
                    self._find(
                        f,
                        line,
                        f"{_describe(v)} passed to {path}",
                        "the calls made with it there are outside the code package",
                        _service(v),
                    )
        return Unknown(f"the result of {path}()")

    def _invoke(
        self, fn: Def, args: list[Value], kwargs: dict[str, Value], f: _Frame, line: int
    ) -> Value:
        """A package function called with these arguments: what it returns (and, when a
        boto3 object is passed in, the calls it makes with it)."""
        if f.depth >= _MAX_DEPTH:
            return Unknown(f"{fn.name}() nested too deep")
        mod = self.load(fn.module)
        node = fn.node
        if mod is None or isinstance(node, ast.ClassDef):
            return Unknown(fn.name)
        a = node.args
        positional = [*a.posonlyargs, *a.args]
        bound: dict[str, Value] = {}
        defaults = a.defaults
        for i, p in enumerate(positional):
            if i < len(args):
                bound[p.arg] = args[i]
            elif p.arg in kwargs:
                bound[p.arg] = kwargs[p.arg]
            else:
                j = i - (len(positional) - len(defaults))
                if j >= 0:
                    bound[p.arg] = self.eval(defaults[j], self._module_frame(mod))
        for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
            if p.arg in kwargs:
                bound[p.arg] = kwargs[p.arg]
            elif d is not None:
                bound[p.arg] = self.eval(d, self._module_frame(mod))
        frame = self._frame(mod, node, bound, f.depth + 1)
        key = (id(node), repr(sorted(bound.items(), key=lambda kv: kv[0])))
        if any(isinstance(v, AWS_OBJECTS) for v in bound.values()) and key not in self._bound_scans:
            self._bound_scans.add(key)
            self._calls_in(node, self._frame(mod, node, bound, f.depth + 1))
        if key in self._returned:
            return self._returned[key]
        self._returned[key] = Unknown(f"{fn.name}() calls itself")
        returns = [self.eval(r.value, frame) for r in _returns(node) if r.value is not None]
        known = [v for v in returns if not isinstance(v, Unknown)]
        value = known[-1] if known else returns[-1] if returns else Unknown(f"{fn.name}()")
        self._returned[key] = value
        return value

    def _method_call(
        self,
        m: Method,
        args: list[Value],
        kwargs: dict[str, Value],
        f: _Frame,
        line: int,
        node: ast.Call,
    ) -> Value:
        obj, name = m.obj, m.name
        if isinstance(obj, Client):
            svc = obj.service
            if not (isinstance(svc, Lit) and isinstance(svc.value, str)):
                self._find(f, line, f"client.{name}(...)", _why(svc, "the client's service"))
                return Unknown("result")
            s = svc.value
            if awsmodel.service_model(s) is None:
                self._find(f, line, f"{s}.{name}(...)", f"{s!r} is not an AWS service of botocore")
                return Unknown("result")
            if name in ("get_paginator", "get_waiter"):
                which = _arg(args, kwargs, 0, "operation_name" if name[4] == "p" else "waiter_name")
                if not (isinstance(which, Lit) and isinstance(which.value, str)):
                    self._find(f, line, f"{s}.{name}(...)", _why(which, "its name"), s)
                    return Unknown("result")
                op = (
                    awsmodel.operation(s, which.value)
                    if name == "get_paginator"
                    else awsmodel.waiter_operation(s, which.value)
                )
                if op is None:
                    self._find(f, line, f"{s}.{name}({which.value!r})", f"no such {name[4:]}", s)
                    return Unknown("result")
                return Paginator(s, op, name == "get_waiter")
            if name in awsmodel.CLIENT_LOCAL:
                return Inert()
            if name in ("generate_presigned_url", "generate_presigned_post"):
                method = _arg(args, kwargs, 0, "ClientMethod")
                op = None
                if isinstance(method, Lit) and isinstance(method.value, str):
                    op = awsmodel.operation(s, method.value)
                if op is None:
                    self._find(f, line, f"{s}.{name}(...)", _why(method, "the method"), s)
                    return Unknown("url")
                params = _dict_arg(node, "Params", self, f)
                self._record(s, op, params, f, line)
                return Unknown("url")
            injected = awsmodel.INJECTED.get((s, "", name))
            if injected:
                for op in injected:
                    self._record(s, op, _injected_params(kwargs), f, line)
                return Unknown("result")
            op = awsmodel.operation(s, name)
            if op is None:
                self._find(f, line, f"{s}.{name}(...)", f"not an operation of the {s} API", s)
                return Unknown("result")
            self._record(s, op, kwargs, f, line)
            return Unknown(f"the response of {s}.{name}")
        if isinstance(obj, Paginator):
            if name in ("paginate", "wait"):
                self._record(obj.service, obj.op, kwargs, f, line)
            return Unknown("pages")
        if isinstance(obj, Collection):
            self._collection_call(obj, kwargs, f, line)
            return obj
        if isinstance(obj, Resource):
            return self._resource_call(obj, name, args, kwargs, f, line)
        if isinstance(obj, Inert):
            return Inert()
        if isinstance(obj, Def):  # a classmethod / staticmethod of a package class
            cls = obj.node
            assert isinstance(cls, ast.ClassDef)
            for st in cls.body:
                if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)) and st.name == name:
                    return self._invoke(
                        Def(obj.module, f"{obj.name}.{name}", st), args, kwargs, f, line
                    )
        return Unknown("result")

    # --- resources ---------------------------------------------------------------------------
    def _rmodel(self, r: Resource) -> dict[str, Any]:
        model = awsmodel.resource_model(r.service) or {}
        if r.type == "":
            return dict(model.get("service", {}))
        return dict(model.get("resources", {}).get(r.type, {}))

    def _resource_attr(self, r: Resource, attr: str, f: _Frame, node: ast.AST) -> Value:
        from botocore import xform_name

        m = self._rmodel(r)
        for ident in m.get("identifiers", []):
            if xform_name(ident["name"]) == attr:
                return dict(r.ids).get(ident["name"], Unknown(f"{r.type}.{attr}"))
        for col in m.get("hasMany", {}):
            if xform_name(col) == attr:
                return Collection(r, col)
        callables = {
            *m.get("has", {}),
            *m.get("actions", {}),
            *(f"WaitUntil{w}" for w in m.get("waiters", {})),
            "Load" if "load" in m else "",
            "Reload" if "load" in m else "",
        }
        if attr in m.get("has", {}) or any(xform_name(c) == attr for c in callables if c):
            return Method(r, attr)
        if (r.service, r.type, attr) in awsmodel.INJECTED or attr in ("meta",):
            return Method(r, attr)
        if "load" in m and r.type:
            # a loaded attribute (`table.item_count`): reading it calls the load operation
            req = m["load"]["request"]
            line = getattr(node, "lineno", 0)
            self._record(r.service, req["operation"], self._params(r, req, {}), f, line)
            return Unknown(f"{r.type}.{attr}")
        return Unknown(f"{r.type or r.service}.{attr}")

    def _params(
        self, r: Resource, request: dict[str, Any], kwargs: dict[str, Value]
    ) -> dict[str, Value]:
        ids = dict(r.ids)
        out: dict[str, Value] = {}
        for p in request.get("params", []):
            target = p["target"]
            if not target.isidentifier():
                continue
            if p["source"] == "identifier":
                out[target] = ids.get(p["name"], Unknown(f"{r.type}.{p['name']}"))
            elif "value" in p:
                out[target] = Lit(p["value"])
        out.update(kwargs)
        return out

    def _resource_call(
        self,
        r: Resource,
        name: str,
        args: list[Value],
        kwargs: dict[str, Value],
        f: _Frame,
        line: int,
    ) -> Value:
        from botocore import xform_name

        m = self._rmodel(r)
        model = awsmodel.resource_model(r.service) or {}
        for sub, spec in m.get("has", {}).items():
            if sub == name:
                res = spec["resource"]
                ids: list[tuple[str, Value]] = []
                inputs = iter(args)
                parent = dict(r.ids)
                for ident in res.get("identifiers", []):
                    if ident["source"] == "input":
                        val = next(inputs, None)
                        if val is None:
                            val = kwargs.get(ident["target"], Unknown(f"{sub}.{ident['target']}"))
                        ids.append((ident["target"], val))
                    elif ident["source"] == "identifier":
                        ids.append((ident["target"], parent.get(ident["name"], Unknown("id"))))
                return Resource(r.service, res["type"], tuple(ids))
        for act, spec in m.get("actions", {}).items():
            if xform_name(act) == name:
                req = spec["request"]
                self._record(r.service, req["operation"], self._params(r, req, kwargs), f, line)
                if "resource" in spec and spec["resource"].get("type"):
                    return Resource(r.service, spec["resource"]["type"], ())
                return Unknown(f"the response of {name}")
        for w, spec in m.get("waiters", {}).items():
            if f"wait_until_{xform_name(w)}" == name:
                op = awsmodel.waiter_operation(r.service, xform_name(spec["waiterName"]))
                params = {
                    p["target"]: dict(r.ids).get(p["name"], Unknown("id"))
                    for p in spec.get("params", [])
                    if p["source"] == "identifier"
                }
                if op:
                    self._record(r.service, op, {**params, **kwargs}, f, line)
                return Unknown("waited")
        if name in ("load", "reload") and "load" in m:
            req = m["load"]["request"]
            self._record(r.service, req["operation"], self._params(r, req, {}), f, line)
            return Unknown("loaded")
        injected = awsmodel.INJECTED.get((r.service, r.type, name))
        if injected:
            owner: dict[str, Value] = {}
            # the owner's identifiers as the operation's parameters (Table.Name -> TableName)
            for k, v in r.ids:
                owner[{"Name": _name_param(r.type), "BucketName": "Bucket"}.get(k, k)] = v
            for op in injected:
                self._record(r.service, op, {**owner, **_injected_params(kwargs)}, f, line)
            return Inert()
        del model
        return Unknown(f"{r.type}.{name}")

    def _collection_call(
        self, c: Collection, kwargs: dict[str, Value], f: _Frame, line: int
    ) -> None:
        spec = self._rmodel(c.owner).get("hasMany", {}).get(c.name, {})
        req = spec.get("request")
        if req:
            self._record(
                c.owner.service, req["operation"], self._params(c.owner, req, kwargs), f, line
            )

    # --- recording ---------------------------------------------------------------------------
    def _record(
        self, service: str, op: str, params: dict[str, Value], f: _Frame, line: int
    ) -> None:
        self.calls.add(
            Call(
                service,
                op,
                tuple(sorted(params.items(), key=lambda kv: kv[0])),
                f.module.file,
                line,
            )
        )

    def _find(self, f: _Frame, line: int, what: str, why: str, service: str | None = None) -> None:
        self.findings.add(Finding(f.module.file, line, what, why, service))


# --- helpers ------------------------------------------------------------------------------
def _arg(args: list[Value], kwargs: dict[str, Value], i: int, name: str) -> Value:
    if i < len(args):
        return args[i]
    return kwargs.get(name, Unknown(f"argument {name} not given"))


def _why(v: Value, what: str) -> str:
    if isinstance(v, Unknown):
        return f"{what} is not a literal ({v.why})"
    return f"{what} is not a literal"


def _describe(v: Value) -> str:
    if isinstance(v, Client):
        s = v.service.value if isinstance(v.service, Lit) else "?"
        return f"a {s} client"
    if isinstance(v, Resource):
        return f"a {v.service} {v.type or 'resource'}"
    return "a boto3 object"


def _service(v: Value) -> str | None:
    if isinstance(v, Client) and isinstance(v.service, Lit):
        return str(v.service.value)
    if isinstance(v, Resource):
        return v.service
    if isinstance(v, Collection):
        return v.owner.service
    if isinstance(v, Paginator):
        return v.service
    return None


def _name_param(rtype: str) -> str:
    return f"{rtype}Name"


def _injected_params(kwargs: dict[str, Value]) -> dict[str, Value]:
    out = dict(kwargs)
    for src, dst in (("Bucket", "Bucket"), ("Key", "Key"), ("bucket", "Bucket"), ("key", "Key")):
        if src in kwargs:
            out[dst] = kwargs[src]
    return out


def _dict_arg(node: ast.Call, name: str, scanner: Scanner, f: _Frame) -> dict[str, Value]:
    for k in node.keywords:
        if k.arg == name and isinstance(k.value, ast.Dict):
            return {
                str(key.value): scanner.eval(val, f)
                for key, val in zip(k.value.keys, k.value.values, strict=True)
                if isinstance(key, ast.Constant)
            }
    return {}


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _returns(fn: ast.AST) -> Iterator[ast.Return]:
    """The function's own `return` statements (not those of nested definitions)."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Return):
            yield n
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(n))


def _collect_assigns(body: list[ast.stmt], out: dict[str, list[ast.expr]], *, top: bool) -> None:
    """Name -> every expression assigned to it in this body (nested blocks included, nested
    definitions not; a nested def's parameters and loop variables are unknown)."""

    def visit(n: ast.AST) -> None:
        if isinstance(n, ast.Assign):
            for t in n.targets:
                bind(t, n.value)
        elif isinstance(n, (ast.AnnAssign, ast.NamedExpr)):
            if n.value is not None:
                bind(n.target, n.value)
        elif isinstance(n, (ast.With, ast.AsyncWith)):
            for item in n.items:
                if item.optional_vars is not None:
                    bind(item.optional_vars, item.context_expr)
        elif isinstance(n, (ast.For, ast.AsyncFor, ast.comprehension)):
            unknown(n.target)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if not top or isinstance(n, ast.Lambda):
                a = n.args
                for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                    if arg is not None:
                        out.setdefault(arg.arg, []).append(ast.Name(id="\0param", ctx=ast.Load()))
            return
        elif isinstance(n, ast.ClassDef):
            return
        for child in ast.iter_child_nodes(n):
            visit(child)

    def bind(target: ast.AST, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            out.setdefault(target.id, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts, strict=True):
                    bind(t, v)
            else:
                unknown(target)

    def unknown(target: ast.AST) -> None:
        for n in ast.walk(target):
            if isinstance(n, ast.Name):
                out.setdefault(n.id, []).append(ast.Name(id="\0unknown", ctx=ast.Load()))

    for st in body:
        if top and isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        visit(st)


def _stores(body: list[ast.stmt]) -> dict[str, list[ast.expr]]:
    out: dict[str, list[ast.expr]] = {}
    for st in body:
        for n in ast.walk(st):
            if isinstance(n, ast.Assign):
                for t in n.targets:
                    if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
                        out.setdefault(t.value.id, []).append(n.value)
    return out


def scan(root: Path, package: str, module: str) -> tuple[list[Call], list[Finding]]:
    """Every AWS call the handler module `module` can make, and what could not be told."""
    s = Scanner(root, package)
    s.scan_module(module, everything=True)
    key = lambda c: (c.file, c.line, c.service, c.op)  # noqa: E731
    return sorted(s.calls, key=key), sorted(s.findings, key=lambda x: (x.file, x.line, x.what))
