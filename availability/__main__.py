"""`python -m availability`: the same as the `availability` command."""

from availability.cli import main

raise SystemExit(main())
