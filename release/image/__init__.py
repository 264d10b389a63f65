"""The one image: OCI data model, registries, reading images, reproducible builds."""
