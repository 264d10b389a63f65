"""`release init`: an adopter's release.toml, corpus and lock templates, .gitignore lines and
release workflow, in an existing git repository."""

from __future__ import annotations

from pathlib import Path

import click

from release.cli import Out, cli, common


@cli.command("init")
@click.option(
    "--package",
    required=True,
    metavar="NAME",
    help="Your code package: a directory NAME/ (with __init__.py) next to the config. Every "
    "module with a top-level `def lambda_handler` (or `def handler`) becomes a function; "
    "it is read, never imported.",
)
@click.option("--model-path", metavar="DIR", help="The model is this local directory.")
@click.option(
    "--model-repo", metavar="ORG/NAME", help="The model is this hub repository (or --model-path)."
)
@click.option(
    "--revision",
    metavar="REV",
    help="Branch, tag or commit of --model-repo to pin (default: main).",
)
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Model files to pin, repeatable (default: *).",
)
@click.option(
    "--model-dir",
    default="/opt/model",
    metavar="PATH",
    help="Where the model goes in the image.",
)
@click.option("--lock", default="model/model.lock.json", metavar="PATH", help="The model lock.")
@click.option("--corpus", default="model/canary.jsonl", metavar="PATH", help="The canary corpus.")
@click.option(
    "--requirements",
    default="requirements.lock",
    metavar="PATH",
    help="The hash-pinned requirements lock; when it does not exist, requirements.in is "
    "written next to it (never a lock).",
)
@click.option(
    "--predict",
    metavar="MODULE:CALLABLE",
    help="The canary's entry point in your package (unset: a commented line to fill in).",
)
@click.option(
    "--base",
    metavar="REPO@sha256:DIGEST",
    help="The base image by digest (unset: a placeholder Lambda Python base to replace).",
)
@click.option(
    "--action-ref",
    metavar="OWNER/REPO@SHA",
    help="The release Action the workflow uses, by full commit (default: the commit this "
    "release was built from).",
)
@click.option(
    "--ci-config",
    metavar="PATH",
    help="The config the workflow uses (RELEASE_CONFIG), relative to the repository root "
    "(default: the config written here).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite release.toml, the corpus, requirements.in and the workflow; .gitignore is "
    "only ever appended to.",
)
@common
def init_cmd(
    config_path: Path | None,
    out: Out,
    package: str,
    model_path: str | None,
    model_repo: str | None,
    revision: str | None,
    include: tuple[str, ...],
    model_dir: str,
    lock: str,
    corpus: str,
    requirements: str,
    predict: str | None,
    base: str | None,
    action_ref: str | None,
    ci_config: str | None,
    force: bool,
) -> None:
    """Start using release in an existing git repository: write a commented release.toml
    (functions found in --package, the model from --model-path or --model-repo), a canary
    corpus template, requirements.in (with the Lambda runtime interface client) when the
    lock does not exist, `.release/` in .gitignore and .github/workflows/release.yml
    pinned to the release Action. A file that exists is kept; an existing release.toml is
    an error unless --force. Paths are relative to the config's directory; the workflow
    and .gitignore go to the repository root."""
    from release.config import DEFAULT_CONFIG
    from release.init import Options, init

    result = init(
        Options(
            config=config_path or Path(DEFAULT_CONFIG),
            package=package,
            model_path=model_path,
            model_repo=model_repo,
            revision=revision,
            include=include or ("*",),
            model_dir=model_dir,
            lock=lock,
            corpus=corpus,
            requirements=requirements,
            predict=predict,
            base=base,
            action_ref=action_ref,
            ci_config=ci_config,
            force=force,
        )
    )
    out.data(result.to_dict())
    for f in result.files:
        out.status(f"{f.action} {f.path}" + (f" ({f.why})" if f.why else ""))
    out.status(
        f"{len(result.functions)} functions: "
        + ", ".join(f"{n} = {h}" for n, h in result.functions.items())
    )
    out.status(f"workflow action: {result.action_ref}")
    out.status("next:")
    for i, step in enumerate(result.next_steps, 1):
        out.status(f"  {i}. {step}")
