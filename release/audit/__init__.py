"""The audit: what was released, when, by whom, on what evidence (collect, model, render)."""
