"""`bench example …`: starting points a user copies and edits, printed on stdout.

Each example is a file shipped inside the package (so a wheel or a clone without the shared spec
folder has it too); add one by adding a row to :data:`EXAMPLES` and a command below.
"""

from __future__ import annotations

import sys
from importlib.resources import files

import typer

#: example name -> (package holding it, path inside that package)
EXAMPLES: dict[str, tuple[str, str]] = {
    "declaration": ("icb_bench.verify", "data/declaration.example.yaml"),
    "site": ("icb_bench.bench", "data/site.example.yaml"),
}

example_app = typer.Typer(
    no_args_is_help=True,
    help="Print an example input file to start from, e.g. `bench example declaration > site.yaml`.",
)


def example_text(name: str) -> str:
    """The text of the shipped example ``name`` (a key of :data:`EXAMPLES`)."""
    package, path = EXAMPLES[name]
    return files(package).joinpath(path).read_text(encoding="utf-8")


@example_app.command("declaration")
def declaration() -> None:
    """A complete site declaration (申报材料) for `bench score` / `bench verify`.

    Every section filled in and commented: `bench example declaration > site.yaml`, then edit."""
    sys.stdout.write(example_text("declaration"))


@example_app.command("site")
def site() -> None:
    """A site file for multi-node runs and `bench sample`: racks → nodes → meters (PDUs, BMCs).

    `bench example site > site.yaml`, then edit; passwords only by `*_env` / `*_file`."""
    sys.stdout.write(example_text("site"))


def register(app: typer.Typer) -> None:
    """Add the `example` command group to ``app``."""
    app.add_typer(example_app, name="example")
