"""E-mails: jinja2 templates rendered by a pure function, sent by a Celery task.

* :func:`render_email` ``(name, context) -> EmailData`` is pure: it reads ``templates/<name>.subject.txt``,
  ``<name>.txt`` and ``<name>.html`` (HTML autoescaped) and touches no network or database.
* :func:`enqueue_email` sends the named Celery task ``email.send`` (:mod:`tradefleet.worker.email_tasks`),
  which renders and delivers the mail over SMTP (:mod:`tradefleet.emails.send`) with bounded retries.
  Services call it **after** their commit, so a worker never mails a link whose token is not stored yet.
* With no ``SMTP_HOST`` the mail is written to the log instead (subject, recipient and text body, which
  holds the link and no other secret).

Templates: ``verify_email`` (``link``, ``expire_hours``), ``reset_password`` (``link``,
``expire_minutes``), ``password_changed``, ``account_locked`` (``failures``, ``locked_until``, ``everywhere``:
whether the lock is account-wide or for one client IP), ``two_factor_changed`` (``event``: ``"setup"``,
``"enabled"`` or ``"disabled"``).
Every template also gets ``project_name`` and ``email``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TASK_NAME = "email.send"


@dataclass(frozen=True)
class EmailData:
    """A rendered e-mail: one-line ``subject``, ``html`` and plain ``text`` bodies."""

    subject: str
    html: str
    text: str


class UnknownTemplate(Exception):
    """No template of that name (``templates/<name>.txt`` and ``.html`` and ``.subject.txt``)."""


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty link
        keep_trailing_newline=True,
    )


def render_email(name: str, context: dict[str, Any]) -> EmailData:
    """Render the template ``name`` with ``context`` (plus ``project_name`` from the settings).

    Raises :class:`UnknownTemplate` for an unknown name and ``jinja2.UndefinedError`` when the context
    lacks a variable the template uses.
    """
    from tradefleet.config import get_settings

    env = _environment()
    values = {"project_name": get_settings().PROJECT_NAME, **context}
    try:
        subject = env.get_template(f"{name}.subject.txt").render(values)
        text = env.get_template(f"{name}.txt").render(values)
        html = env.get_template(f"{name}.html").render(values)
    except jinja2.TemplateNotFound as exc:
        raise UnknownTemplate(name) from exc
    return EmailData(subject=" ".join(subject.split()), html=html, text=text)


def enqueue_email(to: str, template: str, context: dict[str, Any]) -> None:
    """Send the ``email.send`` task (``to``, ``template``, ``context``: JSON values) to the broker.

    Call after committing whatever the mail refers to. Tests replace this function (the broker seam).
    Broker failures are logged, not raised: a lost mail can be asked for again (resend, new reset
    request), while failing the request would leave the caller unsure whether it was committed.
    """
    from tradefleet.jobs.app import send_task

    try:
        send_task(TASK_NAME, to, template, context)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        log.error("cannot enqueue e-mail %r: %s", template, exc)


def send_account_locked(*, user: Any, failures: int, locked_until: datetime, everywhere: bool = False) -> None:
    """Tell ``user`` their account was locked after ``failures`` failed logins, until ``locked_until``,
    for one client IP or (``everywhere``) account-wide (called by :mod:`tradefleet.security.lockout`)."""
    enqueue_email(user.email, "account_locked", {
        "email": user.email, "failures": failures, "everywhere": everywhere,
        "locked_until": locked_until.strftime("%Y-%m-%d %H:%M UTC")})


TWO_FACTOR_EVENTS = ("setup", "enabled", "disabled")


def send_two_factor_changed(*, user: Any, event: str) -> None:
    """Tell ``user`` that two-factor authentication changed on their account: ``event`` is ``"setup"``
    (a new secret was made), ``"enabled"`` or ``"disabled"``. ``ValueError`` for another event."""
    if event not in TWO_FACTOR_EVENTS:
        raise ValueError(f"event must be one of {TWO_FACTOR_EVENTS}, not {event!r}")
    enqueue_email(user.email, "two_factor_changed", {"email": user.email, "event": event})
