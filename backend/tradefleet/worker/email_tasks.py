"""Celery tasks of the accounts: sending e-mail, and password-reset requests.

``email.send`` retries SMTP and network errors automatically, a few times with exponential backoff,
each countdown well below the broker's visibility timeout (3600 s on Redis), then gives up with an error
in the log: a lost mail can be asked for again. It is acknowledged on receipt (not ``acks_late``):
sending a mail twice is worse than a rare lost one that the user can request again.
"""

from __future__ import annotations

import logging
import smtplib

from tradefleet.emails import render_email
from tradefleet.emails.send import deliver
from tradefleet.worker.app import celery_app

log = logging.getLogger(__name__)


@celery_app.task(name="email.send", bind=True, ignore_result=True,
                 autoretry_for=(smtplib.SMTPException, OSError), max_retries=4,
                 retry_backoff=5, retry_backoff_max=300, retry_jitter=True)
def send_email(self, to: str, template: str, context: dict) -> str:  # noqa: ARG001 - bind for retries
    """Render ``template`` with ``context`` and deliver it to ``to``; returns ``"smtp"`` or ``"log"``."""
    return deliver(to, render_email(template, context))


@celery_app.task(name="auth.password_reset_request", ignore_result=True)
def password_reset_request(email: str) -> bool:
    """Create a reset token and mail it if ``email`` names an active account; True if a mail was queued.

    Run in a worker so that the API answers a reset request in the same time whether or not the
    account exists (see :func:`tradefleet.services.auth.request_password_reset`).
    """
    from tradefleet.db import session_scope
    from tradefleet.services.auth import send_password_reset

    with session_scope() as session:
        return send_password_reset(session=session, email=email)
