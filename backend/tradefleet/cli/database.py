"""``tradefleet migrate``, ``refresh-markets`` and ``demo``: the database's schema, market catalog and
demo account."""

from __future__ import annotations

import typer

from tradefleet.config import get_settings


def migrate(revision: str = typer.Argument("head", help="Alembic revision to upgrade to")) -> None:
    """Bring the database of DATABASE_URL to the latest schema."""
    from tradefleet.migrations import upgrade

    upgrade(revision)
    typer.echo(f"database migrated to {revision}")


def refresh_markets() -> None:
    """Load every enabled exchange's markets through ccxt into the catalog."""
    from tradefleet.db import session_scope
    from tradefleet.market.catalog import refresh_catalog

    for exchange_id in get_settings().EXCHANGES_ENABLED:
        with session_scope() as session:
            count = refresh_catalog(session=session, exchange_id=exchange_id)
        typer.echo(f"{exchange_id}: {count} spot markets")


def demo() -> None:
    """Create the demo account with a running paper sma_cross run on BTC/USDT 1m."""
    from tradefleet.db import session_scope
    from tradefleet.services.demo import ensure_demo

    with session_scope() as session:
        user, run = ensure_demo(session=session)
    settings = get_settings()
    typer.echo(f"demo account: {user.email} / {settings.DEMO_PASSWORD.get_secret_value()}")
    typer.echo(f"demo run: {run.id} ({run.strategy} {run.symbol} {run.timeframe}, {run.status.value})")
