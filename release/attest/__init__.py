"""Evidence bound to a digest: in-toto statements signed into Sigstore bundles (sign.py,
bundle.py), stored as OCI referrers of the image (store.py) and verified offline against
a pinned trust root and a signer policy (signatures.py). Contract 4 in ARCHITECTURE.md."""
