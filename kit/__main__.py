"""`python -m kit` is the `slkit` command."""

from kit.cli import main

main()
