"""The demo account of ``make run``: a trader with a running paper ``sma_cross`` run on BTC/USDT 1m."""

from __future__ import annotations

from sqlmodel import Session, select

from tradefleet.config import get_settings
from tradefleet.models import Run, RunCreate, RunStatus, User, UserCreate
from tradefleet.services import runs as run_service
from tradefleet.services import users as user_service


def ensure_demo(*, session: Session) -> tuple[User, Run]:
    """Create (or reuse) the demo user and make sure it has a running paper ``sma_cross`` run."""
    settings = get_settings()
    email = settings.DEMO_EMAIL.lower()
    user = user_service.get_user_by_email(session=session, email=email)
    if user is None:
        user = user_service.create_user(session=session, user_in=UserCreate(
            email=email, password=settings.DEMO_PASSWORD.get_secret_value()))
    if not user.is_verified:
        user.is_verified = True
        session.add(user)
        session.commit()
    run = session.exec(select(Run).where(Run.owner_id == user.id, Run.strategy == "sma_cross",
                                         Run.symbol == "BTC/USDT", Run.timeframe == "1m")
                       .order_by(Run.created_at.desc())).first()
    if run is None:
        run = run_service.create_run(session=session, owner=user, run_in=RunCreate(
            strategy="sma_cross", params={}, exchange="binance", symbol="BTC/USDT", timeframe="1m",
            mode="paper", stake=10_000))
    if run.status != RunStatus.running:
        run = run_service.start_run(session=session, owner=user, run_id=run.id)
    return user, run
