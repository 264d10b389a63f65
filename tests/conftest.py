"""Root conftest: shared fixtures are pytest plugins under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.tools",
    "tests.fixtures.hub",
    "tests.fixtures.aws",
    "tests.fixtures.registry",
    "tests.fixtures.docker",
]
