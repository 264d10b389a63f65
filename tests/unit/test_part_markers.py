"""The part markers cannot be forgotten: a test reaching dockerd, docker-registry or
moto_server through fixtures is marked at collection, and one reaching a part in a way
collection cannot see fails loudly (tests/fixtures/parts.py, tests/conftest.py).

Each case runs a small test file with pytest's own `pytester` and this repository's
conftest as a plugin; the part-starting fixtures refuse before they start anything, so
no part is started here."""

from __future__ import annotations

import pytest

from tests.fixtures import parts

PLUGIN = ("-p", "tests.conftest", "-p", "no:cacheprovider")


def test_a_test_using_a_part_through_another_fixture_is_marked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def tables(aws_env):
            return aws_env

        @pytest.fixture
        def pushed(registry):
            return registry

        def test_dynamo(tables): pass
        def test_push(pushed): pass
        def test_both(tables, docker_engine): pass
        def test_offline(tmp_path): pass
        """
    )
    fast = pytester.runpytest(
        *PLUGIN, "--collect-only", "-q", "-m", "not docker and not registry and not aws"
    )
    assert fast.ret == 0
    assert [ln for ln in fast.outlines if "::" in ln] == [
        "test_a_test_using_a_part_through_another_fixture_is_marked.py::test_offline"
    ]
    for marker, tests in {
        "aws": ["test_dynamo", "test_both"],
        "registry": ["test_push"],
        "docker": ["test_both"],
    }.items():
        r = pytester.runpytest(*PLUGIN, "--collect-only", "-q", "-m", marker)
        assert [ln.split("::")[1] for ln in r.outlines if "::" in ln] == tests, marker


def test_a_part_asked_for_at_run_time_without_its_marker_fails_before_it_starts(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(params=["layout", "registry"])
        def reg(request):
            return None if request.param == "layout" else request.getfixturevalue("registry")

        def test_roundtrip(reg): pass
        """
    )
    r = pytester.runpytest(*PLUGIN, "-q")
    r.assert_outcomes(passed=1, errors=1)
    r.stdout.fnmatch_lines(
        [
            "*test_roundtrip[[]registry[]] starts a part through the `registry` fixture but is "
            "not marked @pytest.mark.registry: mark it*"
        ]
    )
    r.stdout.no_fnmatch_line("*docker-registry did not start*")


def test_a_running_part_reused_at_run_time_without_its_marker_fails_the_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stand-in part whose session fixture is already up (set up for the marked test):
    # the second, unmarked test reaches it through getfixturevalue and must fail
    monkeypatch.setitem(parts.PARTS, "standin_part", "aws")
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="session")
        def standin_part():
            return "up"

        @pytest.mark.aws
        def test_marked(request):
            assert request.getfixturevalue("standin_part") == "up"

        def test_unmarked(request):
            assert request.getfixturevalue("standin_part") == "up"
        """
    )
    r = pytester.runpytest(*PLUGIN, "-q")
    r.assert_outcomes(passed=2, errors=1)
    r.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_unmarked*",
            "*test_unmarked used standin_part (@pytest.mark.aws) without the marker*",
        ]
    )
