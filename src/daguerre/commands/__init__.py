"""Implementations of the `daguerre` subcommands (registered in daguerre.cli)."""
