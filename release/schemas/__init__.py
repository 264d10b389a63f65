"""The JSON Schemas of this tool's own predicate types (canary report, promotion) and the
SLSA provenance subset it emits, shipped inside the package.

Data, not code: opened with `importlib.resources` (`release.attest.statements.load_schema`), never
by a path relative to a checkout, so an installed wheel carries and finds them. The
repository's top-level `attestations/` is a link to this directory.
"""
