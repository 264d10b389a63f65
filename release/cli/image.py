"""`release build` and `release base`: make the one image, by digest."""

from __future__ import annotations

from pathlib import Path

import click

from release.cli import Out, cli, common, load_config


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{n} B"


@cli.command("build")
@click.option(
    "--base",
    envvar="RELEASE_BASE",
    help="Base image by digest: oci:DIR@sha256:..., HOST/REPO@sha256:..., or an image in "
    "the local Docker engine pinned by its ID, docker-daemon:NAME@sha256:<image id> "
    "(default: [image].base) [env: RELEASE_BASE].",
)
@click.option(
    "--push",
    "push",
    metavar="REF",
    envvar="RELEASE_PUSH",
    help="Repository to write the image to: oci:DIR, HOST[:PORT]/REPO or an ECR "
    "repository (default: [image].registry) [env: RELEASE_PUSH].",
)
@click.option(
    "--backend",
    type=click.Choice(["native", "docker"]),
    default="native",
    show_default=True,
    envvar="RELEASE_BACKEND",
    help="native: daemonless reproducible layers; docker: the Docker engine builds a "
    "generated Dockerfile (DOCKER_HOST) and pushes [env: RELEASE_BACKEND].",
)
@common
def build_cmd(
    config_path: Path | None, out: Out, base: str | None, push: str | None, backend: str
) -> None:
    """Build ONE image for every function in [functions]: base (by digest) + deps + model +
    policy + code, reproducibly (same inputs => same digest; SOURCE_DATE_EPOCH or the
    commit time), and write it to the registry. Prints REGISTRY@sha256:...

    Every module of [code].package ships an unchecked-hash .pyc compiled by an
    interpreter of [image].python (this one, or pythonX.Y on PATH); without one the
    build says so and ships none (--json: "bytecode").

    Exit 1 when a model file or a wheel does not match its lock or the image is over
    Lambda's 10 GiB (or [image].max_size); 2 when the base is not pinned by digest; 3 when
    the registry, the package index (uv) or the Docker engine fails.
    """
    from release.image.build import build

    cfg = load_config(config_path)
    img = build(cfg, base=base, push=push, backend=backend)  # type: ignore[arg-type]
    for la in img.layers:
        out.status(
            f"  {la.role:<7} {la.digest[:19]}  {_human(la.size):>10} gz  {_human(la.usize):>10}"
            + ("  (cached)" if la.cached and la.role != "base" else "")
        )
    if img.bytecode.get("skipped"):
        out.status(f"note: {img.bytecode['skipped']}")
    out.status(
        f"built {len(img.functions)} functions into {img.ref} "
        f"({_human(img.size)} compressed, {_human(img.usize)} uncompressed, {img.backend})"
    )
    out.info(img.ref)
    out.data(img.to_json())


@cli.command("base")
@click.option(
    "--rootfs",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Root filesystem tarball, e.g. from `mmdebstrap --variant=apt --include=python3 "
    "--format=tar bookworm out.tar`.",
)
@click.option(
    "--out",
    "out_ref",
    default="oci:.release/base",
    show_default=True,
    help="OCI layout to write the base image into (oci:DIR).",
)
@common
def base_cmd(config_path: Path | None, out: Out, rootfs: Path, out_ref: str) -> None:
    """Make a single-layer base image from a rootfs tarball, reproducibly (mtimes clamped
    to SOURCE_DATE_EPOCH, default the newest mtime inside), and print oci:DIR@sha256:...

    Use it as [image].base or RELEASE_BASE for an offline build.
    """
    from release.image.base import make_base

    res = make_base(rootfs, out_ref, Path.cwd())
    out.status(f"base image: 1 layer, {_human(res.size)} gz, {_human(res.usize)} uncompressed")
    out.info(res.ref)
    out.data(
        {
            "ref": res.ref,
            "digest": res.digest,
            "layer": res.layer,
            "size": res.size,
            "uncompressed_size": res.usize,
        }
    )
