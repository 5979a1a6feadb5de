"""``ctbench plugins``: what is installed, of which kind, from which distribution."""

from __future__ import annotations

import json

import click
from ctbench.core.hookspecs import KINDS
from ctbench.core.registry import default_registry


@click.command()
@click.option(
    "--json", "as_json", is_flag=True, help="Print {kind: [{name, provider, description}]}."
)
def plugins(as_json: bool) -> None:
    """List every registered plugin: kind, name, providing distribution and description."""
    registry = default_registry()
    listing = {
        kind: [
            {"name": e.name, "provider": e.provider, "description": e.description}
            for e in registry.entries(kind)
        ]
        for kind in KINDS
    }
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return

    from tabulate import tabulate

    rows = [
        (kind, item["name"], item["provider"], item["description"])
        for kind, items in listing.items()
        for item in items
    ]
    if not rows:
        click.echo("No ctbench plugins are installed.")
        return
    click.echo(tabulate(rows, headers=["kind", "name", "provider", "description"]))
