"""``python -m qsafe`` runs the CLI."""

from qsafe.cli import run

run()
