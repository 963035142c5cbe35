"""The `availability` command."""

from availability.cli.batch import main

__all__ = ["main"]
