"""``python -m tradefleet.cli``: the ``tradefleet`` command."""

from tradefleet.cli import app

app()
