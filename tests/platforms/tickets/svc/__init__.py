"""Ticket triage: a platform unlike the example (its own package, model, corpus, lock,
plain boto3). The tests release it with `release` installed from its wheel."""
