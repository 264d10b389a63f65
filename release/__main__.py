"""`python -m release`: the same command line as the `release` script."""

from release.cli import main

main()
