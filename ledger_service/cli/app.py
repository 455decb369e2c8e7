"""The typer application: every command and group, registered in the order ``--help`` lists.

The commands are plain functions in their group's module and are registered here rather than
decorated where they are defined, so that the order of ``ledger --help`` is written in one place
and does not depend on the order in which modules happen to be imported.
"""

from __future__ import annotations

import typer

from ledger_service.cli import (
    adjustments,
    audit,
    console,
    cycles,
    dlq,
    grants,
    migrate,
    pools,
    positions,
    refunds,
    run,
    sample,
    tokens,
)

cli = typer.Typer(help="Event-sourced prepaid-wallet ledger.", no_args_is_help=True)

cli.command()(run.run)
cli.command()(run.react)
cli.command()(run.serve)
cli.command()(run.consume)
cli.command()(run.project)
cli.command()(tokens.token)
cli.command("login-link")(console.login_link)
cli.command("publish-sample")(sample.publish_sample)
cli.command()(migrate.migrate)
cli.command()(audit.verify)
cli.command()(audit.replay)
cli.command()(audit.history)
cli.command()(refunds.refund)

cli.add_typer(dlq.group, name="dlq")
cli.add_typer(cycles.group, name="cycles")
cli.add_typer(positions.group, name="positions")
cli.add_typer(audit.group, name="audit")
cli.add_typer(adjustments.group, name="adjust")
cli.add_typer(grants.group, name="grant")
cli.add_typer(pools.group, name="pools")


def main() -> None:
    cli()
