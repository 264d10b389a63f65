"""The output-distribution canary: does the candidate's model behave like the baseline's?

`stats` holds the pure statistics, `report` the report format and the comparison,
`offline` runs an image's own model over the canary corpus, `live` shifts alias traffic
and watches CloudWatch. Entry point: `release.canary.offline.run(...) -> CanaryReport`.
"""
