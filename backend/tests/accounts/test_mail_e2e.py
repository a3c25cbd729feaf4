"""End to end with real processes: uvicorn and a Celery worker on PostgreSQL and Redis, and a real SMTP
server on loopback (aiosmtpd, in this test process). A trader registers; the worker's ``email.send``
task delivers the verification mail over SMTP; the test takes the link from the received mail and
verifies through the API. Then a password reset goes the same way (``auth.password_reset_request`` and
``email.send`` in the worker), and the new password signs in."""

from __future__ import annotations

import subprocess

import httpx
from support.common import free_port, stack_env, wait_for

from helpers import link_in, token_of
from tradefleet.config import REPO_ROOT
from tradefleet.devstack import BIN, Stack


def test_verification_and_reset_mails_through_a_real_worker(e2e_database, redis_url, _smtp_server, tmp_path):
    smtp = _smtp_server
    smtp.messages.clear()
    smtp.reject_next = 1  # the first delivery attempt is refused: the task must retry
    smtp.attempts = 0
    env = stack_env(database_url=e2e_database, redis_url=redis_url, sim_port=free_port(),
                    SMTP_HOST=smtp.host, SMTP_PORT=str(smtp.port), SMTP_TLS="false",
                    EMAILS_FROM_EMAIL="noreply@tradefleet.test", FRONTEND_BASE_URL="http://app.tradefleet.test")
    with Stack(env=env, log_dir=tmp_path / "logs") as stack:
        subprocess.run([str(BIN / "tradefleet"), "migrate"], env=stack.full_env(), cwd=REPO_ROOT, check=True,
                       capture_output=True)
        stack.worker(concurrency=1)
        base = stack.api(port=free_port())
        api = httpx.Client(base_url=f"{base}/api/v1", timeout=10)

        email, password = "mailer@example.com", "correct horse battery"
        assert api.post("/auth/register", json={"email": email, "password": password}).status_code == 201
        # Retried with backoff (a few seconds) after the refused first attempt.
        message = wait_for(lambda: smtp.messages and smtp.messages[0], 90, "the verification mail", stack)
        assert smtp.attempts >= 2
        assert message.envelope_rcpt == [email]
        link = link_in(message)
        assert link.startswith("http://app.tradefleet.test/verify.html?token=")
        verified = api.post("/auth/verify-email", json={"token": token_of(link)})
        assert verified.status_code == 200 and verified.json()["is_verified"] is True

        assert api.post("/auth/password-reset/request", json={"email": "nobody@example.com"}).status_code == 202
        assert api.post("/auth/password-reset/request", json={"email": email}).status_code == 202
        reset = wait_for(lambda: len(smtp.messages) >= 2 and smtp.messages[1], 60, "the reset mail", stack)
        assert reset.envelope_rcpt == [email]
        token = token_of(link_in(reset))
        confirmed = api.post("/auth/password-reset/confirm", json={"token": token, "new_password": "a new password 42"})
        assert confirmed.status_code == 200, confirmed.text
        login = api.post("/auth/login", data={"username": email, "password": "a new password 42"})
        assert login.status_code == 200 and login.json()["refresh_token"]
        # The password-changed notice arrives too; nothing was ever mailed to the unknown address.
        wait_for(lambda: len(smtp.messages) >= 3, 60, "the password-changed mail", stack)
        assert {tuple(m.envelope_rcpt) for m in smtp.messages} == {(email,)}
