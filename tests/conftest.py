"""Root conftest: shared fixtures are pytest plugins under tests/fixtures/; every test that
starts a real part carries its marker (tests/fixtures/parts.py), added here at collection
and checked at run time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.parts import RUNNING, needed_markers, unmarked

pytest_plugins = [
    "tests.fixtures.tools",
    "tests.fixtures.hub",
    "tests.fixtures.aws",
    "tests.fixtures.registry",
    "tests.fixtures.docker",
    "pytester",
]


#: modules that share a session-scoped result no other module uses, or a per-machine
#: cache they must not fill at the same time: one xdist worker runs each group
SHARED = {
    "tests/e2e/test_evidence.py": "evidence_release",
    "tests/e2e/test_fuzz.py": "evidence_release",
    "tests/workflows/test_release_act.py": "act",
    "tests/workflows/test_adopter_act.py": "act",
}
#: the longest modules first (their `--durations` in bench/RESULTS.md, "test suite"), so
#: the workers, which take whole modules in this order, finish together
FIRST = [
    "tests/e2e/test_evidence.py",
    "tests/e2e/test_fuzz.py",
    "tests/e2e/test_pipeline.py",
    "tests/e2e/test_merged_fs.py",
    "tests/image/test_build.py",
    "tests/e2e/test_layout.py",
    "tests/workflows/test_adopter_act.py",
    "tests/workflows/test_release_act.py",
    "tests/integration/test_iam_enforced.py",
    "tests/image/test_container.py",
    "tests/verifiers/test_third_party.py",
    "tests/canary/test_image_canary.py",
    "tests/deploy/test_pretraffic.py",
    "tests/deploy/test_guard.py",
    "tests/deploy/test_chain.py",
    "tests/integration/test_action.py",
    "tests/integration/test_setup.py",
    "tests/e2e/test_docs_aws.py",
    "tests/adoption/test_install.py",
    "tests/attest/test_built_image.py",
]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a part-starting fixture, directly or through other fixtures
    (`item.fixturenames` is the transitive closure), gets that part's marker.

    For `.ci/test`'s `pytest -n N --dist loadgroup`: every test is in its module's xdist
    group (or its SHARED group), so a module's fixtures are made once, on one worker; the
    modules in FIRST come first."""
    for item in items:
        for marker in needed_markers(getattr(item, "fixturenames", ())):
            if item.get_closest_marker(marker) is None:
                item.add_marker(marker)
        module = item.nodeid.split("::", 1)[0]
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(SHARED.get(module, module)))
    rank = {m: i for i, m in enumerate(FIRST)}
    items.sort(key=lambda it: rank.get(it.nodeid.split("::", 1)[0], len(rank)))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    RUNNING.append(item)
    try:
        return (yield)
    finally:
        RUNNING.pop()


@pytest.fixture(autouse=True)
def _parts_are_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test: a part reached through `request.getfixturevalue` (invisible at
    collection, and not started again when a session fixture already runs) needs the
    marker too."""
    yield
    missing = unmarked(request.node, request.fixturenames)
    if missing:
        pytest.fail(
            f"{request.node.nodeid} used {', '.join(missing)} without the marker: give the "
            "parameter or the test that asks for it the marker",
            pytrace=False,
        )
