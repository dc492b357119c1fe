"""`python -m daguerre ...`, the same as the `daguerre` command."""

from daguerre.cli import app

app()
