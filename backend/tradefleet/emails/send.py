"""Delivery of a rendered e-mail: over SMTP with the ``emails`` package, or to the log without ``SMTP_HOST``."""

from __future__ import annotations

import logging
import smtplib

import emails
from emails.backend.smtp import SMTPBackend

from tradefleet.config import get_settings
from tradefleet.emails import EmailData

log = logging.getLogger(__name__)

DEFAULT_FROM = "tradefleet@localhost"


class EmailSendError(smtplib.SMTPException):
    """The SMTP server did not accept the message (any reply but 250). Retried by the task."""


def deliver(to: str, data: EmailData) -> str:
    """Send ``data`` to ``to``; returns ``"smtp"`` or ``"log"``.

    Raises ``smtplib.SMTPException`` (including :class:`EmailSendError`) or ``OSError`` when the server
    is unreachable or refuses the message: the Celery task retries on those.
    """
    settings = get_settings()
    sender = (settings.EMAILS_FROM_NAME, settings.EMAILS_FROM_EMAIL or DEFAULT_FROM)
    if not settings.SMTP_HOST:
        # No SMTP configured (local demo): the log is the mailbox. The text body holds the link (the
        # point of the mail) and no other secret.
        log.warning("e-mail (no SMTP_HOST, not sent) to %s: %s\n%s", to, data.subject, data.text)
        return "log"
    message = emails.html(html=data.html, text=data.text, subject=data.subject, mail_from=sender)
    options = {"host": settings.SMTP_HOST, "port": settings.SMTP_PORT, "timeout": settings.SMTP_TIMEOUT_S}
    if settings.SMTP_SSL:
        options["ssl"] = True
    elif settings.SMTP_TLS:
        options["tls"] = True
    if settings.SMTP_USER:
        options["user"] = settings.SMTP_USER
    if settings.SMTP_PASSWORD is not None:
        options["password"] = settings.SMTP_PASSWORD.get_secret_value()
    # fail_silently=False: connection and protocol errors raise instead of hiding in the response.
    backend = SMTPBackend(fail_silently=False, **options)
    try:
        response = message.send(to=to, smtp=backend)
    finally:
        backend.close()
    if response is None or not response.success:
        status = getattr(response, "status_code", None)
        raise EmailSendError(f"SMTP server did not accept the message (status {status})")
    log.info("e-mail %r sent to %s", data.subject, to)
    return "smtp"
