"""Generate the reference docs from the code: `python -m release.docs [--check]`.

docs/cli.md comes from the click commands (usage, help text, every option with its
environment variable and default), docs/configuration.md from the config models
(`release.config`: every key, type and default) plus the one-line meanings below, and the
IAM blocks of docs/aws-setup.md (between `<!-- iam:ARGS -->` and `<!-- /iam -->`) from
`release iam ARGS` and its guard rules block (`<!-- guard-rules:--env ENV -->`) from
`release guard rules` over the production config written by that file's
`cat > release.aws.toml <<'EOF'` step. `--check`
exits 1 naming each stale file (the test suite runs it), so the references cannot drift.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"

#: one line per config key ("section.key"); new keys get theirs here
MEANINGS: dict[str, str] = {
    "model.repo": "hub repository `ORG/NAME` (give this or `path`)",
    "model.path": "a local model directory (the example; air-gapped mirrors)",
    "model.revision": "branch, tag or commit to pin",
    "model.include": "globs of files to pin (fnmatch on the full path)",
    "model.exclude": "globs to leave out",
    "model.lock": "where the lock lives",
    "image.base": "base image, by digest (`oci:DIR@sha256:...`, `HOST/REPO@sha256:...`, `docker-daemon:NAME@sha256:<image id>`)",
    "image.registry": "where images and attestations live: `oci:DIR`, `HOST[:PORT]/REPO` (plain HTTP only for 127.0.0.1/localhost), or `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO`",
    "image.requirements": "the handlers' hash lock, installed into `/opt/deps`",
    "image.platform": "one single-platform manifest (Lambda rejects an index)",
    "image.python": "the image's Python, for uv's wheel selection",
    "image.model_dir": "where the model goes in the image (build, verify, canary and invoke read it there; `MODEL_DIR` in the image)",
    "image.workdir": "where the code and policy go (`<workdir>/<[code].package>`, `<workdir>/policy`); the image's WorkingDir",
    "image.max_size": "refuse images larger than this (bytes, uncompressed); Lambda's 10 GiB always applies",
    "functions": "function name -> handler (`PACKAGE.module.function`, the CMD); the handler lives in `[code].package`",
    "code.package": "your code: a directory (Python package) next to the config, shipped at `<workdir>/<package>`",
    "code.policy": "optional: a data directory your handlers read, shipped at `<workdir>/policy` (e.g. Rego); unset: no data layer. Not the gate's policy",
    "code.predict": "required by the canary: its entry point `MODULE:CALLABLE`: `CALLABLE(model_dir, lock_path=...)` returns an object whose `predict(inputs, batch_size=N)` gives per input the `[canary].output` type's fields: `label` + `confidence` or `probs` (optionally `logits`); `probs`; `score`; `vector` (docs/canary.md)",
    "code.invoke": "optional: the module `release invoke` runs as `python -m MODULE HANDLER` (event on stdin, JSON result on stdout; exit 0 returned, 1 raised, 2 bad event); unset: the runner shipped with release",
    "signing.mode": "`sigstore` (keyless, ambient OIDC), `key:PATH` (ECDSA P-256 PEM, generated on first use), `awskms:KEY-ID`",
    "signing.identity": "keyless verify policy: certificate identity (exact)",
    "signing.identity_regex": "keyless verify policy: certificate identity (full-match regex)",
    "signing.issuer": "keyless verify policy: OIDC issuer",
    "signing.public_key": "key-mode verify policy: PEM path or `awskms:KEY-ID` (default `PATH.pub` of `key:PATH`)",
    "signing.trusted_root": "a pinned `trusted_root.json` (default: sigstore-python's public-good root); verification never uses the network",
    "canary.corpus": "JSONL `{id, text[, expected]}`; `text` a string or a JSON object (several input fields), `expected` typed like the output",
    "canary.output": "what `[code].predict` returns per input: `label` (one of K >= 2 labels), `multilabel` (a probability per label), `score` (a float) or `vector` (fixed dimension); checked on the outputs, a mismatch names the item (exit 2)",
    "canary.labels": "the label set in the model's order (label, multilabel); unset: the model's config.json `id2label`",
    "canary.multilabel_threshold": "multilabel: a label is on at this probability",
    "canary.score_alpha": "score: Wilcoxon signed-rank p of the paired differences",
    "canary.score_min_shift": "score: minimum |median paired difference|, in baseline standard deviations",
    "canary.score_max_median_abs_diff": "score: maximum median |paired difference|, in baseline standard deviations",
    "canary.vector_cosine_percentile": "vector: the low percentile of per-item cosine similarity that is floored",
    "canary.vector_min_cosine": "vector: that percentile's minimum",
    "canary.vector_alpha": "vector: sign-flip permutation p of the mean paired difference",
    "canary.vector_min_shift": "vector: minimum ||mean paired difference|| / mean baseline norm",
    "canary.pretraffic.items": "`release promote` (lambda): corpus items each configured function's new version and its live version are invoked with before any traffic moves (a sample seeded by the digest; all when fewer); docs/promotion.md",
    "canary.pretraffic.timeout_seconds": "pre-traffic: an invocation taking longer fails the check (as does the function's own timeout)",
    "canary.pretraffic.concurrency": "pre-traffic: invocations in flight at once",
    "canary.pretraffic.functions.ENV.event": '`[canary.pretraffic.functions.NAME]`: the invocation event of function NAME, JSON; a string exactly `"{input}"` becomes the corpus input (string or object), `{input}` inside a string its text, `{input_json}` its JSON (a JSON body in a string), `{id}` the item\'s id; only the functions named here are invoked',
    "canary.pretraffic.functions.ENV.output": 'where the `[canary].output` type\'s fields are in the response: a dotted path (numbers index lists, JSON strings on the way are parsed; `""` = the response) to the object holding them, or a path per field, e.g. `{ label = "results.0.urgency" }` (a label without confidence: compared on labels only)',
    "canary.share_alpha": "label: marginal-homogeneity p (McNemar at K = 2, Stuart-Maxwell above); multilabel: Holm-adjusted per-label McNemar p",
    "canary.share_min_shift": "label, multilabel: minimum per-label share shift",
    "canary.max_flip_rate": "G2: share of items whose label flipped",
    "canary.confident_flip_conf": "G2: a flip at or above this confidence is a confident flip",
    "canary.max_confident_flip_rate": "G2: share of confident flips",
    "canary.ks_alpha": "G3: KS test on confidences",
    "canary.accuracy_max_drop": "G4: accuracy drop on labelled items",
    "canary.accuracy_alpha": "G4: McNemar p of the accuracy drop",
    "canary.min_accuracy": "absolute: accuracy on labelled items",
    "canary.low_confidence": "absolute: below it a prediction is low-confidence",
    "canary.max_low_confidence_rate": "absolute: share of low-confidence predictions",
    "canary.identical_tolerance": "same weights rebuilt: output differences beyond this are reported",
    "canary.min_paired_fraction": "a comparison pairing fewer than this share of the corpus with its baseline fails (`paired-items`); also checked on the signed report by `verify` and the gate",
    "iam.variables": "environment variables naming AWS resources (table names, queue URLs) for `release iam --function`, in every environment; `[environments.ENV].variables` win",
    "iam.statements": "statements (`sid`, `actions`, `resources`; `${Region}`/`${Account}`/`${Partition}` filled) added to every function's policy; they cover unresolved calls of their actions",
    "iam.functions.ENV.statements": "`[[iam.functions.NAME.statements]]`: added to function NAME's policy; they cover its unresolved calls (an action granted, or for a boto3 object handed to outside code any action of its service)",
    "environments.ENV.target": "`lambda` or `local`",
    "environments.ENV.functions": "function name -> Lambda function name (or local name)",
    "environments.ENV.alias": "the alias every function is served through (event sources and API routes must point at it)",
    "environments.ENV.region": "region of the functions (default: the AWS default)",
    "environments.ENV.alarms": "CloudWatch alarms that roll the promotion back when in ALARM; an environment `after` this one needs them never in ALARM during its soak",
    "environments.ENV.variables": "the functions' environment variables (as configured in Lambda): passed by `release invoke`, read by `release iam --function` for the resources its calls name (then `[iam].variables`)",
    "environments.ENV.after": "the environment a digest must be promoted to (a verified promotion statement), and soak in, before the gate allows it here; [promotion.md](promotion.md#environment-chain-and-soak)",
    "environments.ENV.soak": "how long the digest must have been live in `after`, with no rollback there and its alarms never in ALARM: `24h`, `30m`, `2d`, `1d12h` (unset with `after`: 0)",
    "environments.ENV.function_variables": "per function (`[environments.ENV.function_variables.NAME]`), on top of `variables`",
    "environments.ENV.guard.topic": "the drift guard's SNS topic ARN: every mismatch is published there as JSON (unset: logged and recorded only)",
    "environments.ENV.guard.rollback": "the drift guard moves a drifted alias back to the promoted version (`guard.rollback` in the ledger); false: alarm only",
    "environments.ENV.guard.schedule": "the EventBridge schedule of the guard's periodic check (`rate(...)` or `cron(...)`)",
    "environments.ENV.traffic.canary_weight": "share of alias traffic on the new version during the live canary; 0 < w < 1",
    "environments.ENV.traffic.bake_seconds": "live canary duration; 0 turns the live canary off",
    "environments.ENV.traffic.min_samples": "canary predictions needed before L1 can pass",
    "environments.ENV.traffic.deadline_seconds": "an inconclusive live canary is rolled back after this",
    "environments.ENV.traffic.looks": "how many looks share alpha (Bonferroni)",
    "environments.ENV.traffic.alpha": "the live label-share test's alpha (split over the looks)",
    "environments.ENV.traffic.metrics_namespace": "where the handlers' EMF metrics are",
    "environments.ENV.traffic.label_metrics": "one metric per label: label -> metric name (release.prod.toml names the example's); with `label_metric` unset",
    "environments.ENV.traffic.label_metric": "or one metric counting predictions, with the label in a dimension",
    "environments.ENV.traffic.label_dimension": "that dimension's name (with `label_metric`)",
    "environments.ENV.traffic.score_metric": "a score output's metric (one value per prediction, the score): its statistic is compared per period (L1 score)",
    "environments.ENV.traffic.score_statistic": "the CloudWatch statistic compared: Average, pNN, tmNN, wmNN, tcNN, tsNN",
    "environments.ENV.traffic.max_score_shift": "how far the statistic may move (absolute) before a significant shift fails",
    "environments.ENV.traffic.error_metric": "the handlers' own error count (L2); unset: Lambda's errors only",
    "environments.ENV.traffic.period_seconds": "the comparison's period: whole periods after the shift only, both versions alike (60: standard-resolution metrics)",
    "environments.ENV.traffic.min_periods": "whole periods with predictions on both versions before L1 can decide",
    "environments.ENV.traffic.max_error_rate_increase": "error-rate regression that fails the live canary",
    "environments.ENV.traffic.max_p99_increase": "p99 duration regression that fails the live canary",
    "ledger.url": "`sqlite:PATH` or `dynamodb:TABLE` (key schema in docs/aws-setup.md)",
    "gate.policy": "your gate policy directory; unset: the default shipped with release. Files in package `release.gate` replace the default, files in `release.custom` add deny reasons to it (docs/policy.md)",
    "gate.vulnerabilities": "`ecr` (scan findings), or a CycloneDX VEX / SARIF file",
    "gate.workflow": "the workflow the provenance's builder id must name, e.g. `.github/workflows/release.yml` (unset: not checked)",
    "readiness.metrics_namespace": "the namespace the handlers emit to and the alarms watch (default: `[environments.ENV].traffic.metrics_namespace`); rows in [readiness.md](readiness.md)",
    "readiness.dlq_min_retention_days": "each DLQ keeps messages at least this long",
    "readiness.visibility_timeout_factor": "source queue visibility timeout >= factor x the function's timeout",
    "readiness.max_batch_size": "event source mapping batch size at most",
    "readiness.max_batching_window_seconds": "event source mapping batching window at most",
    "readiness.alarms": "`[[readiness.alarms]]`: each an alarm the platform's handlers must have: `name` (row kind `alarm-NAME`), `metric`, `function` (a `[functions]` name: its version-free series), `threshold` (at most), optional `period_seconds` (window at most) and `statistic` (e.g. `p95`); none built in",
    "readiness.functions.ENV.triggers": '`[readiness.functions.NAME]` (a `[functions]` name): `triggers`, every SQS, SNS and EventBridge trigger the function must have live on its alias: `{ type = "sqs", queue = Q }`, `{ type = "sns", topic = T }`, `{ type = "eventbridge", rule = R }` (a name, an ARN or a queue URL; `${VAR}` from `[environments.ENV].variables`, else `[iam].variables`); rows `trigger-declared`, `trigger-undeclared` in [readiness.md](readiness.md); a function not here gets no trigger rows',
    "readiness.sns_failures_threshold": "the SNS delivery-failure alarm's threshold at most",
    "readiness.sns_failures_period_seconds": "... over a window at most this long",
    "readiness.dlq_depth_threshold": "the DLQ depth alarm's threshold at most",
    "readiness.min_memory_mb": "function memory at least",
    "readiness.max_timeout_seconds": "function timeout at most",
    "readiness.reserved_concurrency": "require reserved concurrency (false: row not reported)",
    "readiness.tracing": "require X-Ray tracing Active (false: row not reported)",
    "readiness.ecr_scan_on_push": "require ECR scan on push (false: row not reported)",
    "readiness.optional": "row kinds reported but not failing the report",
    "readiness.gate": "true: the gate requires a ready environment before promote",
}


# --- CLI reference ------------------------------------------------------------------------
def _commands() -> list[tuple[str, click.Command]]:
    from release.cli import _register, cli

    _register()
    out: list[tuple[str, click.Command]] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name in sorted(cmd.commands):
                walk(cmd.commands[name], [*path, name])
        else:
            # the hidden `canary run` is `release canary DIGEST`
            out.append((" ".join(p for p in path if p != "run"), cmd))

    walk(cli, [])
    return out


def _default(p: click.Parameter) -> str:
    if isinstance(p, click.Option) and p.is_flag:
        return ""
    d = p.default
    if d is None or d == () or callable(d) or "Sentinel" in repr(d) or d is False:
        return ""
    return f"`{d}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def cli_reference() -> str:
    from release.cli import cli

    lines = [
        "# CLI reference",
        "",
        "<!-- generated by `python -m release.docs`; do not edit (a test fails when stale) -->",
        "",
        _cell((cli.help or "").replace("\b", "")),
        "",
        "Every command takes `--config FILE` (default `./release.toml`; `verify-bundle` needs",
        "none) and `--json`. **Environment variables**: an option can be set through a",
        "variable exactly when the table below names one (its `--help` says `[env: ...]` too);",
        "the command line wins. No variable selects, replaces or skips a verification step.",
        "",
        "**`--json`**: stdout holds exactly one JSON document whatever the exit code - the",
        "command's result when it has one (a failed check's result too, with exit 1), else",
        '`{"error", "details", "exit_code"}` (usage errors included). Human output goes to stderr.',
        "",
        "**Exit codes**: 0 done/allowed, 1 a check said no, 2 bad usage/config/input,",
        "3 an outside system failed (registry, AWS, hub, docker).",
        "",
        "**`-v, --verbose`** (before the command: `release -v pipeline`): debug lines too, and",
        "an error's traceback before its message (same exit code). Without it progress is one",
        "plain line per step on stderr and an error is one line, `release: error: MESSAGE`,",
        "followed by its detail lines when it has any.",
        "",
    ]
    envs: dict[str, list[str]] = {}
    for name, cmd in _commands():
        ctx = click.Context(cmd, info_name=f"release {name}")
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        lines += [f"## `release {name}`", "", "```", f"release {name} {usage}", "```", ""]
        import inspect

        lines += [inspect.cleandoc(cmd.help or "").replace("\b\n", ""), ""]
        rows = []
        for p in cmd.params:
            if not isinstance(p, click.Option):
                continue
            opts = ", ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
            if p.metavar or not p.is_flag:
                tn = p.make_metavar(ctx) if hasattr(p, "make_metavar") else ""
                opts += f" {tn}" if tn and not p.is_flag else ""
            env = f"`{p.envvar}`" if isinstance(p.envvar, str) else ""
            if isinstance(p.envvar, str):
                envs.setdefault(p.envvar, []).append(f"`{name} {p.opts[-1]}`")
            help_text = re.sub(r"\s*\[env: [^\]]*\]", "", p.help or "")
            rows.append(f"| {_cell(opts)} | {env} | {_default(p)} | {_cell(help_text)} |")
        if rows:
            lines += ["| option | variable | default | meaning |", "|---|---|---|---|", *rows, ""]
    lines += ["## Environment variables", "", "| variable | sets |", "|---|---|"]
    for var in sorted(envs):
        shown = sorted(set(envs[var]))
        cell = (
            ", ".join(shown)
            if len(shown) <= 4
            else ", ".join(shown[:4]) + f" and {len(shown) - 4} more"
        )
        lines.append(f"| `{var}` | {cell} |")
    lines += [
        "",
        "Read by the code, not options: `RELEASE_CACHE_DIR` (content-addressed cache, default",
        "`~/.cache/release`), `SOURCE_DATE_EPOCH` (the build's time; default the HEAD commit's),",
        "`RELEASE_REGISTRY_USERNAME` / `RELEASE_REGISTRY_PASSWORD` (registry credentials; ECR:",
        "boto3), `RELEASE_SIGNING_KEY_PASSWORD` (key file passphrase), `SIGSTORE_ID_TOKEN`,",
        "`RELEASE_SIGSTORE_TRUST_CONFIG` (keyless signing against another Sigstore instance),",
        "`RELEASE_EXPECTED_COMMIT` (the commit provenance must name), `HF_ENDPOINT`, `HF_TOKEN`,",
        "`AWS_*` (boto3), `DOCKER_HOST`.",
        "",
    ]
    return "\n".join(lines)


# --- configuration reference ------------------------------------------------------------------
def _type(ann: Any) -> str:
    if (
        typing.get_origin(ann) is dict
        and typing.get_origin(typing.get_args(ann)[0]) is typing.Annotated
    ):
        return "table: name -> str"
    s = str(ann).replace("typing.", "").replace("<class '", "").replace("'>", "")
    s = re.sub(r"release\.config\.(\w+)", r"\1", s)
    s = re.sub(r"Annotated\[(\w+), [^\]]*\]", r"\1", s)
    s = s.replace("NoneType", "none").replace(" | None", " (optional)")
    s = re.sub(r"Literal\[(.*)\]", lambda m: m[1].replace("'", '"').replace(", ", " \\| "), s)
    return s


def _field_default(f: Any) -> str:
    from pydantic_core import PydanticUndefined

    if f.default is PydanticUndefined and f.default_factory is None:
        return "required"
    v = f.default_factory() if f.default_factory is not None else f.default
    if isinstance(v, BaseModel):
        return ""
    if v is None:
        return "none"
    return f"`{json.dumps(v)}`"


def config_reference() -> str:
    from release.config import ConfigFile

    lines = [
        "# Configuration reference (`release.toml`)",
        "",
        "<!-- generated by `python -m release.docs`; do not edit (a test fails when stale) -->",
        "",
        "One file at the repository root (or `--config`). Relative paths are relative to the",
        "config file. Unknown keys, wrong types and missing fields are refused at load time",
        "with one line naming the key (exit 2). Annotated examples: `release.toml` (the",
        "example platform, local) and [aws-setup.md](aws-setup.md) (a Lambda platform).",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]

    def model_rows(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            key = f"{prefix}.{name}" if prefix else name
            ann = f.annotation
            sub = _submodel(ann)
            if sub is not None and typing.get_origin(ann) is None:
                model_rows(sub, key)
                continue
            if sub is not None:  # dict[str, Model]
                model_rows(sub, f"{key}.ENV")
                continue
            head, _, rest = key.partition(".")
            if head == "environments":
                env, _, rest = rest.partition(".")
                head = f"environments.{env}"
            shown = f"[{head}]" + (f".{rest}" if rest else "")
            lines.append(
                f"| `{shown}` | {_cell(_type(ann))} | {_field_default(f)} | "
                f"{_cell(MEANINGS.get(key, f.description or ''))} |"
            )

    model_rows(ConfigFile, "")
    lines.append("")
    return "\n".join(lines)


def _submodel(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    if typing.get_origin(ann) is dict:
        args = typing.get_args(ann)
        if len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
            return args[1]
    return None


# --- IAM blocks of docs/aws-setup.md ----------------------------------------------------------
_IAM_BLOCK = re.compile(r"(<!-- iam:(?P<args>[^>]*?) -->\n)(?P<body>.*?)(<!-- /iam -->)", re.S)
_RULES_BLOCK = re.compile(
    r"(<!-- guard-rules:(?P<args>[^>]*?) -->\n)(?P<body>.*?)(<!-- /guard-rules -->)", re.S
)
_CONFIG_BLOCK = re.compile(r"cat > release\.aws\.toml <<'EOF'\n(?P<toml>.*?)\nEOF\n", re.S)


def iam_blocks(text: str, root: Path) -> str:
    """Re-render every IAM block of aws-setup.md from `release iam` over the production
    config shown in that file (written to `root`, next to the code package)."""
    from release import config, iam

    m = _CONFIG_BLOCK.search(text)
    if not m:
        return text
    cfg_path = root / "release.toml"
    cfg_path.write_text(m["toml"])
    tomllib.loads(m["toml"])
    cfg = config.load(cfg_path)

    def render(mb: re.Match[str]) -> str:
        args = mb["args"].split()
        opts = dict(zip(args[::2], args[1::2], strict=False))
        env = opts.get("--env")
        if "--job" in opts:
            doc = iam.job_policy(cfg, opts["--job"], env)
        elif opts.get("--function") == "release.guard":
            doc = iam.guard_policy(cfg, env)
        elif "--function" in opts:
            doc = iam.function_policy(cfg, opts["--function"], env)
        else:
            doc = iam.repository_policy(cfg, env)
        return f"{mb[1]}```json\n{json.dumps(doc, indent=2)}\n```\n{mb[4]}"

    def render_rules(mb: re.Match[str]) -> str:
        from release.guard import rules

        env = mb["args"].split()[-1]
        doc = rules(cfg, env)
        return f"{mb[1]}```json\n{json.dumps(doc, indent=2, sort_keys=True)}\n```\n{mb[4]}"

    return _RULES_BLOCK.sub(render_rules, _IAM_BLOCK.sub(render, text))


def generate() -> dict[Path, str]:
    import shutil
    import tempfile

    out = {DOCS / "cli.md": cli_reference(), DOCS / "configuration.md": config_reference()}
    aws = DOCS / "aws-setup.md"
    if aws.is_file():
        with tempfile.TemporaryDirectory(prefix="release-docs-") as tmp:
            for name in ("handlers", "policy", ".github/workflows"):
                if (REPO / name).is_dir():
                    shutil.copytree(
                        REPO / name, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__")
                    )
            out[aws] = iam_blocks(aws.read_text(), Path(tmp))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    stale = []
    for path, text in generate().items():
        old = path.read_text() if path.is_file() else None
        if old == text:
            continue
        stale.append(path)
        if not check:
            from release._io import atomic_write_bytes

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, text.encode())
    for p in stale:
        print(f"{'stale' if check else 'wrote'}: {p.relative_to(REPO)}", file=sys.stderr)
    if check and stale:
        print("run: python -m release.docs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
