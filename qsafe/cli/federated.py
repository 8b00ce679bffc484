"""``qsafe fl``: encrypted federated updates (init/encrypt/aggregate/decrypt) and the backdoor scenario
(simulate/audit). Subcommands load lazily so that ``qsafe fl --help`` imports neither tenseal nor torch."""

from __future__ import annotations

import click

from qsafe.cli import LazyGroup

FL_COMMANDS: dict[str, str] = {
    "init": "qsafe.cli.federated_he:init",
    "encrypt": "qsafe.cli.federated_he:encrypt",
    "aggregate": "qsafe.cli.federated_he:aggregate",
    "decrypt": "qsafe.cli.federated_he:decrypt",
    "simulate": "qsafe.cli.federated_sim:simulate",
    "audit": "qsafe.cli.federated_sim:audit",
    "report": "qsafe.cli.federated_sim:report",
}

FL_HELP: dict[str, str] = {
    "init": "Key authority: make the HE secret and public contexts.",
    "encrypt": "Client: encrypt and sign one update.",
    "aggregate": "Aggregator: check and sum encrypted updates (public material only).",
    "decrypt": "Key authority: decrypt the aggregate to an averaged update.",
    "simulate": "Run the federated backdoor scenario with a chosen defense.",
    "audit": "Verify an audit trail's hash chain and signed round heads.",
    "report": "Re-tabulate and re-plot saved simulate --results files (heatmap for a matrix).",
}


@click.group(cls=LazyGroup, lazy=FL_COMMANDS, short_help=FL_HELP)
def fl() -> None:
    """Homomorphically encrypted federated updates and robust aggregation."""
