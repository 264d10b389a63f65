"""release: supply-chain verification and release pipeline for one-image Lambda platforms.

The library never prints; it returns typed results or raises a `release.errors.ReleaseError`.
All argument parsing and output live in `release.cli`.
"""

__version__ = "0.1.0"
