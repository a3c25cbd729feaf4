"""What only a live run needs, beside the run service (:mod:`tradefleet.services.runs`): the checks of
its owner and exchange account at creation and start, and handing its stop or kill to a worker.
Keyword-only, session first; never commits (the run service does).

The API never calls an exchange: the run service stops or kills a live run by setting its status (and
``killed_at``), commits, and calls :func:`enqueue_kill`; the task ``live.kill_run`` cancels the run's
orders on the exchange and, for a kill, sells the position at market
(:func:`tradefleet.execution.reconcile.kill`). If the task is lost, the periodic reconciliation does the
same (an order of a run that is not running is cancelled; a killed run holding a position is closed).
"""

from __future__ import annotations

import logging
import uuid

from sqlmodel import Session

from tradefleet.config import get_settings
from tradefleet.errors import PermissionDeniedError, validation_error
from tradefleet.models import ExchangeAccount, Run, RunCreate, User
from tradefleet.models.exchange_account import KeyCheckStatus

log = logging.getLogger(__name__)

KILL_TASK = "live.kill_run"


# ---------------------------------------------------------------------------------------------- validation

def _check_account(*, session: Session, owner: User, account_id: uuid.UUID | None, exchange: str) -> ExchangeAccount:
    account = session.get(ExchangeAccount, account_id) if account_id is not None else None
    if account is None or account.owner_id != owner.id:
        # Another user's account is indistinguishable from one that does not exist.
        raise validation_error("exchange_account_id", "no such exchange account of yours")
    if account.exchange != exchange:
        raise validation_error("exchange_account_id", f"the account is for {account.exchange}, the run trades on {exchange}")
    if account.check_status != KeyCheckStatus.valid:
        detail = f" ({account.check_message})" if account.check_message else ""
        raise validation_error("exchange_account_id", f"the account's keys are not checked valid: "
                               f"{account.check_status.value}{detail}")
    return account


def _check_owner(owner: User) -> None:
    if get_settings().REQUIRE_VERIFIED_EMAIL_FOR_LIVE and not owner.is_verified:
        raise PermissionDeniedError("verify your e-mail address before trading live")


def check_live_run(*, session: Session, owner: User, run_in: RunCreate) -> None:
    """A live run needs a verified owner (``REQUIRE_VERIFIED_EMAIL_FOR_LIVE``, 403) and one of the
    owner's exchange accounts, on the run's exchange, whose keys were checked valid (422 on
    ``exchange_account_id`` otherwise)."""
    _check_owner(owner)
    _check_account(session=session, owner=owner, account_id=run_in.exchange_account_id, exchange=run_in.exchange)


def check_live_start(*, session: Session, owner: User, run: Run) -> None:
    """The checks of :func:`check_live_run` again when a live run starts (keys may have changed);
    a restarted run is no longer killed."""
    _check_owner(owner)
    _check_account(session=session, owner=owner, account_id=run.exchange_account_id, exchange=run.exchange)
    run.killed_at = None


# ---------------------------------------------------------------------------------------------- the worker's part

def enqueue_kill(run_id: uuid.UUID, *, close: bool) -> None:
    """Send ``live.kill_run`` (after the commit). A broker failure is logged, not raised: the periodic
    reconciliation carries the stop or kill out anyway."""
    from tradefleet.jobs.app import send_task

    try:
        send_task(KILL_TASK, str(run_id), close)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        log.error("cannot enqueue %s for run %s: %s; reconciliation will do it", KILL_TASK, run_id, type(exc).__name__)
