"""The weights once (issue 27 item 3, docs/model-format.md): a model of realistic size
(the example model grown by 8 MiB of embedding rows no token reaches), pinned and built
natively; the image holds one copy of its weights, and the image's own handler serves
the same outputs as the pinned source ONNX."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from release import modelpin
from release.image.inspect import open_image
from release.image.registry import open_registry
from tests.fixtures.tools import copy_project, run_cli

PAD_MB = 8
TEXTS = [
    "This movie was wonderful, I loved every minute of it.",
    "Terrible, awful film. A complete waste of time.",
    "The meeting is on Tuesday at the office.",
]


@pytest.fixture(scope="module")
def big(
    build_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    proj = copy_project(tmp_path_factory.mktemp("once") / "p")
    model = proj / "model" / "examples" / "sst2-tiny"
    subprocess.run(
        [
            sys.executable,
            str(proj / "model" / "examples" / "generate.py"),
            "--out",
            str(model),
            "--pad-mb",
            str(PAD_MB),
        ],
        check=True,
        capture_output=True,
    )
    r = run_cli("model", "pin", cwd=proj, env=build_env)
    assert r.code == 0, r.stderr
    r = run_cli("build", "--push", "oci:out", "--json", cwd=proj, env=build_env)
    assert r.code == 0, r.stderr
    return proj, json.loads(r.stdout)


def test_the_image_holds_one_copy_of_the_weights(big: tuple[Path, dict[str, Any]]) -> None:
    proj, doc = big
    lock = modelpin.read_lock(proj / "model" / "model.lock.json")
    src = lock.by_path()["onnx/model.onnx"]
    assert src.size > PAD_MB << 20
    img = open_image(open_registry("oci:out", proj), doc["digest"])
    # every regular file of every layer outside the deps: base, model, policy, code
    files = [
        (p, size, sha)
        for role in ("base", "model", "policy", "code")
        for p, size, sha in img.iter_files(role)
    ]
    shipped = {p: size for p, size, _ in files}
    model_bytes = sum(
        n for p, n in shipped.items() if p.startswith(("/opt/model/", "/opt/release/"))
    )
    # one copy: the pinned model's size (the runtime form is the same weights, 4 KiB
    # aligned, and a small graph); two copies would be twice that
    assert lock.total_size * 0.95 < model_bytes < lock.total_size * 1.05
    assert "/opt/model/onnx/model.onnx" not in shipped
    assert shipped["/opt/model/runtime/model.weights"] > src.size * 0.95
    # the source ONNX is nowhere, and no other file is as big as the weights again
    assert not [p for p, _, sha in files if sha == src.sha256]
    assert [p for p, n in shipped.items() if n > src.size * 0.9] == [
        "/opt/model/runtime/model.weights"
    ]
    # the build's own report: the model layer is one model, not two
    model_layer = next(la for la in doc["layers"] if la["role"] == "model")
    assert model_layer["uncompressed_size"] < lock.total_size * 1.05


def test_the_images_handler_predicts_what_the_pinned_onnx_does(
    big: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    proj, doc = big
    img = open_image(open_registry("oci:out", proj), doc["digest"])
    img.extract(["model", "code"], tmp_path)
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from handlers.common import model as mm;"
        "m = mm.SentimentModel.load(sys.argv[2], sys.argv[3]);"
        "print(json.dumps([[p.label, list(p.logits)] for p in m.predict(json.loads(sys.argv[4]))]))"
    )

    def predict(root: str, model_dir: Path, lock: Path) -> Any:
        p = subprocess.run(
            [sys.executable, "-c", code, root, str(model_dir), str(lock), json.dumps(TEXTS)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    shipped = predict(
        str(tmp_path / "var" / "task"),
        tmp_path / "opt" / "model",
        tmp_path / "opt" / "release" / "model.lock.json",
    )
    pinned = predict(
        str(tmp_path / "var" / "task"),
        proj / "model" / "examples" / "sst2-tiny",
        proj / "model" / "model.lock.json",
    )
    assert [label for label, _ in shipped] == ["POSITIVE", "NEGATIVE", pinned[2][0]]
    for (la, a), (lb, b) in zip(shipped, pinned, strict=True):
        assert la == lb and a == pytest.approx(b, abs=1e-5)
