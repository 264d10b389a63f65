"""What a distributed wheel was built from: the commit of the tool's repository.

`None` in a checkout; `.ci/dist` writes the commit into the copy it builds the wheel from,
so an installed tool knows which commit of the adopters' Action (`action.yml` at the root
of that repository, pinned by this SHA) matches it: `release init` writes it into the
workflow it generates.
"""

#: the tool repository and commit this wheel was built from (set by .ci/dist)
REPOSITORY = "release-platform/release"
COMMIT: str | None = None
