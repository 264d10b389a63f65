"""The SBOM of a real (test-built) image: valid CycloneDX 1.6, every model file with the
lock's hash, the deps packages, model card, reproducible."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from release import sbom
from release.errors import VerificationFailed
from release.image.registry import open_registry
from tests.attest.conftest import CREATED, build_image, lock_for, model_files, wheels_record


@pytest.fixture(scope="module")
def doc(layout_image: Any) -> dict[str, Any]:
    reg, digest, _ = layout_image
    return sbom.generate(reg, digest)


def test_valid_cyclonedx_16(doc: dict[str, Any]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc)) is None
    assert doc["specVersion"] == "1.6"
    # and an invalid change is caught by the same validator
    bad = json.loads(json.dumps(doc))
    bad["components"][0]["type"] = "spaceship"
    with pytest.raises(VerificationFailed, match=r"^SBOM is not valid CycloneDX 1\.6"):
        sbom.validate(bad)


def test_every_model_file_with_lock_hash(doc: dict[str, Any]) -> None:
    model = next(c for c in doc["components"] if c["type"] == "machine-learning-model")
    lock = lock_for(model_files())
    assert model["purl"] == f"pkg:huggingface/example/sst2-tiny@{lock['commit']}"
    got = {c["name"]: c["hashes"][0]["content"] for c in model["components"]}
    assert got == {f["path"]: f["sha256"] for f in lock["files"]}
    card = model["modelCard"]
    assert card["modelParameters"]["task"] == "text-classification"
    assert {"name": "huggingface:license", "value": "apache-2.0"} in card["properties"]


def test_packages_base_code_and_graph(doc: dict[str, Any], layout_image: Any) -> None:
    _reg, digest, _ = layout_image
    libs = {c["name"]: c for c in doc["components"] if c["type"] == "library"}
    assert set(libs) == {"six", "idna"}
    assert libs["six"]["purl"].startswith("pkg:pypi/six@")
    # SPDX ids, not free-text names: six says `License: MIT`, idna `License-Expression: BSD-3-Clause`
    assert libs["six"]["licenses"] == [{"license": {"id": "MIT"}}]
    assert libs["idna"]["licenses"] == [{"license": {"id": "BSD-3-Clause"}}]
    # the wheel's sha256 from the build's wheels record (one the lock pins), not the RECORD's
    rec = {w["name"]: w for w in wheels_record()["wheels"]}
    assert libs["idna"]["hashes"] == [{"alg": "SHA-256", "content": rec["idna"]["sha256"]}]
    assert (
        rec["idna"]["sha256"]
        in (Path(__file__).resolve().parents[2] / "requirements.lock").read_text()
    )
    assert {"name": "release:hash-of", "value": f"wheel:{rec['six']['filename']}"} in libs["six"][
        "properties"
    ]
    base = next(c for c in doc["components"] if c["type"] == "container")
    assert base["version"] == "sha256:" + "ef" * 32
    apps = {c["name"]: c for c in doc["components"] if c["type"] == "application"}
    handler = Path(__file__).resolve().parents[2] / "handlers" / "scorer.py"
    files = {f["name"]: f["hashes"][0]["content"] for f in apps["code"]["components"]}
    assert files["/var/task/handlers/scorer.py"] == hashlib.sha256(handler.read_bytes()).hexdigest()
    assert any(f["name"].endswith(".rego") for f in apps["policy"]["components"])
    root = doc["dependencies"][0]
    assert root["ref"] == doc["metadata"]["component"]["bom-ref"]
    assert "base-image" in root["dependsOn"]
    assert doc["metadata"]["component"]["version"] == digest


def test_reproducible(doc: dict[str, Any], layout_image: Any) -> None:
    reg, digest, other = layout_image
    again = sbom.generate(reg, digest, check=True)
    assert sbom.dumps(again) == sbom.dumps(doc)
    assert doc["metadata"]["timestamp"] == CREATED
    assert sbom.generate(reg, other)["serialNumber"] != doc["serialNumber"]


def test_model_differs_from_lock(tmp_path: Path) -> None:
    reg = open_registry("oci:r", tmp_path)
    lock = lock_for(model_files(b"not what is in the image"))
    digest = build_image(reg, lock=lock)
    with pytest.raises(
        VerificationFailed, match=r"model files differ from the baked lock: onnx/model.onnx$"
    ):
        sbom.generate(reg, digest)


def test_licences_of_the_real_debian_base(base_image: str, tmp_path: Path) -> None:
    """The OS packages of the real mmdebstrap base (Debian bookworm + python3): no
    `license.name` is an SPDX id or expression (libdb5.3's `Sleepycat and BSD-3-clause`,
    libpam's `BSD-3-clause or GPL`, libffi8's `GPL` were), every `license.id` is an SPDX
    id, a component has license objects or one expression, and the document validates."""
    from cyclonedx.spdx import fixup_id, is_expression, is_supported_id

    from release.image import fs
    from release.image.inspect import open_image

    layout, _, digest = base_image.removeprefix("oci:").rpartition("@")
    view = open_image(open_registry(f"oci:{layout}", tmp_path), digest)
    merged = fs.scan(
        view,
        keep=lambda p: (
            p in (sbom.DPKG_STATUS, *sbom.OS_RELEASE)
            or (p.startswith("usr/share/doc/") and p.endswith("/copyright"))
        ),
        hash=lambda _p: False,
    )
    _, debs, _ = sbom.os_packages(merged)
    assert len(debs) > 50
    by_name = {c["name"]: c.get("licenses", []) for c in debs}
    for name in ("libdb5.3", "libffi8", "libpam0g", "libgpg-error0"):
        assert any("id" in x.get("license", {}) for x in by_name[name]), name
    for c in debs:
        lic = c.get("licenses", [])
        assert all("license" in x for x in lic) or (len(lic) == 1 and "expression" in lic[0])
        for x in lic:
            if "expression" in x:
                assert is_expression(x["expression"]), (c["name"], x)
                continue
            sid, name = x["license"].get("id"), x["license"].get("name")
            assert sid is None or is_supported_id(sid), (c["name"], sid)
            if name is not None:
                fixed = fixup_id(name)
                assert not (fixed and is_supported_id(fixed)), (c["name"], name)
                assert not is_expression(name), (c["name"], name)
    sbom.validate(
        {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": debs}
    )
