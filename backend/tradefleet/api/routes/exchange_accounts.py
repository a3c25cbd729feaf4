"""Exchange accounts (API keys) of the current user. Every route is owner-scoped: another user's
account is a 404. Replies never carry a key or a secret, only the masked ``fingerprint``; the keys
are checked by a worker (``check_status`` goes ``pending`` → ``valid`` / ``invalid`` / ``error``)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status

from tradefleet.api.deps import CurrentUser, SessionDep
from tradefleet.api.params import Skip
from tradefleet.models import (
    ExchangeAccountCreate,
    ExchangeAccountPublic,
    ExchangeAccountsPublic,
    ExchangeAccountUpdate,
)
from tradefleet.services import exchange_accounts as service

router = APIRouter(prefix="/exchange-accounts", tags=["exchange accounts"])


def _public(account) -> ExchangeAccountPublic:  # noqa: ANN001 - an ExchangeAccount row
    return ExchangeAccountPublic.model_validate(account, from_attributes=True)


@router.post("", response_model=ExchangeAccountPublic, status_code=status.HTTP_201_CREATED)
def create_account(account_in: ExchangeAccountCreate, session: SessionDep, user: CurrentUser) -> ExchangeAccountPublic:
    """Store keys for an exchange (encrypted) and queue their check: ``check_status`` is ``pending``
    until a worker has connected with them. 422 naming the field for an exchange that is not enabled
    or unknown to ccxt, a sandbox the exchange lacks, or a credential the exchange needs."""
    return _public(service.create_account(session=session, owner=user, account_in=account_in))


@router.get("", response_model=ExchangeAccountsPublic)
def list_accounts(session: SessionDep, user: CurrentUser, skip: int = Skip,
                  limit: int = Query(100, ge=1, le=1000)) -> ExchangeAccountsPublic:
    """The user's accounts, newest first: ``{data, count}``."""
    rows, count = service.list_accounts(session=session, owner=user, skip=skip, limit=limit)
    return ExchangeAccountsPublic(data=[_public(a) for a in rows], count=count)


@router.get("/{account_id}", response_model=ExchangeAccountPublic)
def get_account(account_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> ExchangeAccountPublic:
    return _public(service.get_account_or_404(session=session, owner=user, account_id=account_id))


@router.patch("/{account_id}", response_model=ExchangeAccountPublic)
def update_account(account_id: uuid.UUID, account_in: ExchangeAccountUpdate, session: SessionDep,
                   user: CurrentUser) -> ExchangeAccountPublic:
    """Change the label, sandbox flag or keys; new keys (or a new sandbox flag) are checked again."""
    return _public(service.update_account(session=session, owner=user, account_id=account_id,
                                          account_in=account_in))


@router.delete("/{account_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_account(account_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Response:
    """Delete the account and its keys. 409 while a live run that is not stopped uses it."""
    service.delete_account(session=session, owner=user, account_id=account_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{account_id}/check", response_model=ExchangeAccountPublic, status_code=status.HTTP_202_ACCEPTED)
def check_account(account_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> ExchangeAccountPublic:
    """Queue a new check of the keys (``check_status`` back to ``pending``)."""
    return _public(service.request_check(session=session, owner=user, account_id=account_id))
