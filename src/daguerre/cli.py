"""The `daguerre` command. Each subcommand imports its implementation only when it
runs, so `daguerre --help` is quick and the gateway process never loads torch.

To add a command group, write a Typer in ``daguerre/commands/`` and register it here
with ``app.add_typer(...)``; a single command is an ``@app.command()`` below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from daguerre.commands import admin, keys, model

app = typer.Typer(
    name="daguerre",
    help="Self-hostable, OpenAI-compatible image generation on Temporal.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(keys.app, name="keys")
app.add_typer(admin.app, name="admin")
app.add_typer(model.train_app, name="train")
app.add_typer(model.eval_app, name="eval")
app.command()(model.render)


@app.command()
def up() -> None:
    """Run everything on this machine: Temporal dev server, gateway and workers."""
    from daguerre.config import Settings
    from daguerre.launcher import run

    raise typer.Exit(run(Settings()))


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Default: DAGUERRE_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: DAGUERRE_PORT.")] = None,
) -> None:
    """Serve the HTTP API (scale out by running more of these behind a balancer)."""
    from daguerre.commands.serve import serve_gateway

    serve_gateway(host, port)


@app.command()
def worker(
    pool: Annotated[str, typer.Option(help="The pool to serve, e.g. chat or api.")],
) -> None:
    """Render jobs from one pool's task queue (run one per GPU or CPU host)."""
    from daguerre.commands.serve import serve_worker

    serve_worker(pool)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the image.")
    ] = Path("out.png"),
    size: Annotated[str, typer.Option(help='"auto" or e.g. "512x512".')] = "auto",
    n: Annotated[int, typer.Option("--n", "-n", help="How many images.")] = 1,
    model: Annotated[str | None, typer.Option(help="Default: the server's model.")] = None,
    steps: Annotated[int | None, typer.Option(help="Render steps (model default).")] = None,
    seed: Annotated[int | None, typer.Option(help="Fix the seed for a repeatable image.")] = None,
    server: Annotated[
        str, typer.Option(envvar="DAGUERRE_SERVER", help="The gateway's URL.")
    ] = "http://127.0.0.1:8000",
    key: Annotated[
        str | None, typer.Option(envvar="DAGUERRE_API_KEY", help="API key (Bearer).")
    ] = None,
) -> None:
    """Render through a running server, showing progress, and save the image(s)."""
    from daguerre.commands.generate import GenerateOptions, run_generate

    options = GenerateOptions(
        prompt=prompt,
        output=output,
        size=size,
        n=n,
        model=model,
        steps=steps,
        seed=seed,
        server=server,
        key=key,
    )
    raise typer.Exit(run_generate(options))
