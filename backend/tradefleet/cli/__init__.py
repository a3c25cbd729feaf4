"""The ``tradefleet`` command (console script ``tradefleet = "tradefleet.cli:app"``): one module per
command group.

- :mod:`~tradefleet.cli.database`: ``migrate``, ``refresh-markets``, ``demo``
- :mod:`~tradefleet.cli.sim`: ``exchange-sim``
- :mod:`~tradefleet.cli.accounts`: ``create-admin``
- :mod:`~tradefleet.cli.stack`: ``dev`` (the whole stack, with the local secrets of ``var/``)
- :mod:`~tradefleet.cli.backtests`: ``backtest``
- :mod:`~tradefleet.cli.data`: ``data import|download|list``
- :mod:`~tradefleet.cli.strategy`: ``strategy check``
- :mod:`~tradefleet.cli.keys`: ``keys generate|rotate|migrate-sealed|status``

Each module imports what its commands need inside them, so ``tradefleet --help`` loads little.
"""

from __future__ import annotations

import typer

from tradefleet.cli.accounts import create_admin
from tradefleet.cli.backtests import backtest
from tradefleet.cli.data import data_app
from tradefleet.cli.database import demo, migrate, refresh_markets
from tradefleet.cli.stack import dev
from tradefleet.cli.keys import keys_app
from tradefleet.cli.sim import exchange_sim
from tradefleet.cli.strategy import strategy_app

app = typer.Typer(help="Tradefleet: run trading strategies for many users on one machine.", no_args_is_help=True)
app.command()(migrate)
app.command("exchange-sim")(exchange_sim)
app.command("refresh-markets")(refresh_markets)
app.add_typer(data_app, name="data")
app.command()(demo)
app.command("create-admin")(create_admin)
app.command()(dev)
app.add_typer(strategy_app, name="strategy")
app.command()(backtest)
app.add_typer(keys_app, name="keys")

__all__ = ["app"]
