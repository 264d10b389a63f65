"""`release sbom`, `release attest`, `release verify-bundle`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from release.cli import Out, cli, common, load_config


def _open(cfg: Any, ref: str) -> tuple[Any, Any]:
    """`sha256:<hex>` in the configured registry or `LOCATION@sha256:<hex>` -> (registry, digest)."""
    from release.digest import parse_digest
    from release.image.oci import parse_image_ref
    from release.image.registry import open_registry

    if "@" in ref:
        r = parse_image_ref(ref)
        return open_registry(r.location, cfg.root), r.digest
    return open_registry(cfg.image.registry, cfg.root), parse_digest(ref)


# --- sbom -------------------------------------------------------------------------------
@cli.command("sbom")
@click.argument("digest")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the SBOM here (atomically) instead of stdout.",
)
@click.option(
    "--validate",
    "check",
    is_flag=True,
    help="Also validate against the official CycloneDX 1.6 JSON schema (slower start).",
)
@common
def sbom_cmd(
    config_path: Path | None, out: Out, digest: str, output: Path | None, check: bool
) -> None:
    """CycloneDX 1.6 JSON for the image DIGEST (sha256:<hex> in the configured registry,
    or LOCATION@sha256:<hex>): every Python package of the deps layer, the model as a
    machine-learning-model component with every file's SHA-256 and its model card, the
    base image, policy and handler files, and the dependency graph. Reproducible: the
    serial number and timestamp derive from the image."""
    from release import sbom
    from release._io import atomic_write_bytes

    cfg = load_config(config_path)
    registry, d = _open(cfg, digest)
    doc = sbom.generate(registry, d, cfg=cfg, check=check)
    data = sbom.dumps(doc)
    if output is not None:
        atomic_write_bytes(output, data)
        out.status(f"sbom: {len(doc['components'])} components -> {output}")
        out.data({"path": str(output), "serialNumber": doc["serialNumber"]})
    else:
        click.echo(data.decode(), nl=False)


# --- attest -----------------------------------------------------------------------------
@cli.command("attest")
@click.argument("digest")
@click.option(
    "--signer",
    envvar="RELEASE_SIGNER",
    help="sigstore | key:PATH | awskms:KEY-ID (default: [signing].mode) [env: RELEASE_SIGNER].",
)
@click.option(
    "--predicate",
    "extra",
    nargs=2,
    multiple=True,
    metavar="TYPE FILE",
    help="Also sign FILE (JSON) as predicate TYPE (canary, promotion or a full URI); "
    "our own types are validated against attestations/*.schema.json. Repeatable.",
)
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(["provenance", "sbom", "model", "none"]),
    help="Produce only these built-in statements (default: all three; `none` with "
    "--predicate signs just the given files). Repeatable.",
)
@common
def attest_cmd(
    config_path: Path | None,
    out: Out,
    digest: str,
    signer: str | None,
    extra: tuple[tuple[str, str], ...],
    only: tuple[str, ...],
) -> None:
    """Sign in-toto statements about DIGEST (SLSA provenance v1, the CycloneDX SBOM, the
    OpenSSF model-signing manifest, plus any --predicate) into Sigstore bundles and
    attach each to the image as an OCI referrer. Prints one line per bundle:
    PREDICATE_TYPE REFERRER_DIGEST."""
    from release.attest import sign, statements

    cfg = load_config(config_path)
    registry, d = _open(cfg, digest)
    mode = signer or cfg.signing.mode
    s = sign.make_signer(mode, cfg.root)
    if isinstance(s, sign.KeySigner) and s.created:
        out.status(f"attest: generated signing key {s.path} (0600) and {s.public_key_path}")
    wanted = set(only) - {"none"}
    if not only:
        preds = statements.build(cfg, registry, d)
    else:
        preds = statements.build(cfg, registry, d, only=wanted) if wanted else []
    for ptype, path in extra:
        preds.append(statements.load_predicate(ptype, Path(path)))
    done = sign.attest(registry, d, preds, s)
    for a in done:
        out.status(f"attested {a.predicate_type} -> {a.referrer}")
        out.info(f"{a.predicate_type} {a.referrer}")
    out.data(
        {
            "digest": d,
            "signer": s.description,
            "attestations": [
                {
                    "predicate_type": a.predicate_type,
                    "referrer": a.referrer,
                    "bundle_sha256": a.bundle_sha256,
                    "size": a.size,
                }
                for a in done
            ],
        }
    )


# --- verify-bundle ----------------------------------------------------------------------
@cli.command("verify-bundle")
@click.option(
    "--bundle",
    "bundle_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sigstore bundle JSON.",
)
@click.option("--certificate-identity", help="Expected signer identity (certificate SAN).")
@click.option("--certificate-identity-regexp", help="Expected identity as a full-match regex.")
@click.option("--certificate-oidc-issuer", help="Expected OIDC issuer.")
@click.option(
    "--key", type=click.Path(dir_okay=False, path_type=Path), help="Public key PEM (key mode)."
)
@click.option(
    "--trusted-root",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pinned trusted_root.json (default: Sigstore public good, as shipped).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar="RELEASE_JSON",
    help="Print one JSON document on stdout [env: RELEASE_JSON].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RELEASE_CONFIG",
    help="Take the verify policy from this config's [signing] when no --key or "
    "--certificate-identity is given [env: RELEASE_CONFIG; default: none needed].",
)
@click.argument("artifact")
def verify_bundle_cmd(
    bundle_path: Path,
    certificate_identity: str | None,
    certificate_identity_regexp: str | None,
    certificate_oidc_issuer: str | None,
    key: Path | None,
    trusted_root: Path | None,
    as_json: bool,
    config_path: Path | None,
    artifact: str,
) -> None:
    """The Sigstore client conformance interface: verify the bundle over ARTIFACT (a file,
    or sha256:<hex>) offline. Exit 0 valid, 1 invalid (with the reason), 2 bad usage.
    Needs no release.toml; with --config and neither --key nor --certificate-identity,
    the policy is the config's [signing]."""
    from release.attest.signatures import Policy, policy_from_config, verify_bundle
    from release.digest import Digest, is_digest
    from release.errors import UsageError
    from release.inputs import read_input

    out = Out(as_json)
    click.get_current_context().meta["release.json"] = as_json
    if (
        config_path is not None
        and key is None
        and not (certificate_identity or certificate_identity_regexp)
    ):
        cfg = load_config(config_path)
        policy = policy_from_config(cfg.signing, cfg.root)
    elif key is not None:
        if certificate_identity or certificate_identity_regexp:
            raise UsageError("give --key or --certificate-identity, not both")
        policy = Policy.from_key_file(key, trusted_root)
    else:
        if not (certificate_identity or certificate_identity_regexp) or not certificate_oidc_issuer:
            raise UsageError(
                "give --certificate-identity (or --certificate-identity-regexp) and "
                "--certificate-oidc-issuer, or --key"
            )
        policy = Policy(
            identity=certificate_identity,
            identity_regex=certificate_identity_regexp,
            issuer=certificate_oidc_issuer,
            trusted_root=trusted_root,
        )
    raw = read_input(bundle_path, "bundle")
    if is_digest(artifact):
        res = verify_bundle(raw, policy, artifact_digest=Digest(artifact))
    else:
        res = verify_bundle(raw, policy, artifact=read_input(Path(artifact), "artifact"))
    out.status(f"OK: {bundle_path} verified for {policy.describe()}")
    out.data(
        {
            "ok": True,
            "predicate_type": res.predicate_type if res else None,
            "policy": policy.describe(),
        }
    )
