"""`python -m daguerre ...`, the same as the `daguerre` command."""

from daguerre.cli import app

# Guarded: a worker's engine process is started with multiprocessing's "spawn", which
# imports the parent's main module again (as "__mp_main__") and must not run the CLI.
if __name__ == "__main__":
    app()
