"""Shared runtime of the handlers: settings, model, AWS clients, observability, invoke."""
