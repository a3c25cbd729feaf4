"""Sign-in flows: tokens, e-mail verification, password reset and change, two-factor.

Keyword-only, session first; these functions commit. E-mails are enqueued after the commit
(:func:`tradefleet.emails.enqueue_email`), so a worker never mails a token that is not stored yet.

E-mail tokens (verification, reset) are 256-bit random values stored as SHA-256 digests in
``one_time_token`` with an expiry; using one marks it used in the same transaction that acts on it, so
a link works once. Asking for a new reset link invalidates the older ones.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import delete, func, update
from sqlmodel import Session, select

import tradefleet.emails as mail
from tradefleet.config import get_settings
from tradefleet.db import lock_for_write
from tradefleet.errors import ConflictError, DomainError, PermissionDeniedError
from tradefleet.models import MfaRequired, OneTimeToken, RecoveryCode, Token, TokenPurpose, User, UserCreate
from tradefleet.models._types import utcnow
from tradefleet.security import crypto, totp
from tradefleet.security.passwords import hash_password, verify_password
from tradefleet.security.tokens import (
    TokenError,
    create_access_token,
    create_mfa_token,
    decode_mfa_token,
    hash_opaque_token,
    new_opaque_token,
)
from tradefleet.services import audit
from tradefleet.services import users as users_service
from tradefleet.services.auth_tokens import RefreshTokenError, get_refresh_store

log = logging.getLogger(__name__)


class Unauthorized(DomainError):
    """401 for a failed sign-in step (wrong password, bad or expired 2FA token)."""

    status_code = 401
    detail = "incorrect email or password"


class AccountDisabled(PermissionDeniedError):
    detail = "account disabled"


class InvalidEmailToken(DomainError):
    """400 naming ``token``: unknown, expired or already used (one message for all three)."""

    status_code = 400
    detail = "token: invalid, expired or already used; ask for a new link"

    def __init__(self) -> None:
        super().__init__(field="token")


class InvalidCode(DomainError):
    status_code = 400
    detail = "code: invalid or already used"

    def __init__(self) -> None:
        super().__init__(field="code")


# --- tokens ----------------------------------------------------------------------------------------


def issue_tokens(*, session: Session, user: User, family_id: uuid.UUID | None = None) -> Token:
    """A fresh access token and a refresh token (new family unless ``family_id``) for ``user``."""
    settings = get_settings()
    refresh = get_refresh_store(session).issue(user_id=user.id, token_version=user.token_version,
                                               family_id=family_id)
    return Token(access_token=create_access_token(user.id, token_version=user.token_version),
                 refresh_token=refresh, expires_in=settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60)


def login(*, session: Session, email: str, password: str, client_ip: str) -> Token | MfaRequired:
    """Password sign-in from ``client_ip``: the token pair, or :class:`MfaRequired` when the account has 2FA.

    Raises :class:`~tradefleet.security.ratelimit.RateLimited` (429) while :mod:`~tradefleet.security.lockout`
    locks the account for that IP or account-wide, :class:`Unauthorized` (one message for an unknown e-mail
    and a wrong password: the reply must not reveal which e-mails are registered) and
    :class:`AccountDisabled` (said only after the password proved who is asking).
    """
    # Lockout and audit: a locked account is refused (429, Retry-After) before
    # the password is looked at; failures count towards the lock; every outcome is in the audit log.
    from tradefleet.security import lockout

    lockout.check(email, client_ip)
    user = users_service.authenticate(session=session, email=email, password=password)
    if user is None:
        locked_s = lockout.failed(email, client_ip, session=session)
        audit.record(session=session, actor=None, actor_email=email.strip().lower()[:255],
                     action="auth.login_failed", detail={"reason": "bad credentials", "locked_s": locked_s})
        raise Unauthorized()
    if not user.is_active:
        audit.record(session=session, actor=user, action="auth.login_failed", detail={"reason": "disabled"})
        raise AccountDisabled()
    if user.totp_enabled:
        # The failure count is cleared only by a correct second factor (login_2fa): clearing it here
        # would let someone who knows the password guess codes forever, a few per password login.
        audit.record(session=session, actor=user, action="auth.login_password_ok", detail={"mfa": "pending"})
        return MfaRequired(mfa_token=create_mfa_token(user.id, token_version=user.token_version))
    lockout.succeeded(email, client_ip)
    token = issue_tokens(session=session, user=user)
    audit.record(session=session, actor=user, action="auth.login", detail={"mfa": False})
    return token


def _mfa_user(session: Session, mfa_token: str) -> User:
    try:
        claims = decode_mfa_token(mfa_token)
    except TokenError as exc:
        raise Unauthorized(f"mfa_token: {exc}; sign in again", field="mfa_token") from None
    user = session.get(User, claims.user_id)
    if user is None or user.token_version != claims.token_version or not user.totp_enabled:
        raise Unauthorized("mfa_token: invalid token; sign in again", field="mfa_token")
    if not user.is_active:
        raise AccountDisabled()
    return user


def login_2fa(*, session: Session, mfa_token: str, code: str, client_ip: str) -> tuple[User, Token]:
    """Second step of a 2FA sign-in from ``client_ip``: ``code`` is a TOTP code or an unused recovery code.

    Raises :class:`Unauthorized` for a bad ``mfa_token`` and :class:`InvalidCode` (400 on ``code``) for a
    wrong, reused or out-of-window code.
    """
    from tradefleet.security import lockout

    user = _mfa_user(session, mfa_token)
    lockout.check(user.email, client_ip)
    if not check_second_factor(session=session, user=user, code=code):
        # Wrong codes count towards the same locks as wrong passwords.
        locked_s = lockout.failed(user.email, client_ip, session=session)
        audit.record(session=session, actor=user, action="auth.2fa_failed", detail={"locked_s": locked_s})
        raise InvalidCode()
    lockout.succeeded(user.email, client_ip)
    token = issue_tokens(session=session, user=user)
    audit.record(session=session, actor=user, action="auth.login", detail={"mfa": True})
    return user, token


def refresh(*, session: Session, refresh_token: str) -> Token:
    """Rotate ``refresh_token``: a new pair in the same family (see :mod:`.auth_tokens`).

    Raises :class:`~.auth_tokens.RefreshTokenError` (401) for an unknown, expired, revoked or reused
    token, and when its user is gone, disabled, or changed password since it was issued.
    """
    store = get_refresh_store(session)
    rotation = store.rotate(refresh_token)
    user = session.get(User, rotation.user_id)
    if user is None or not user.is_active or user.token_version != rotation.token_version:
        store.revoke_family(rotation.family_id)
        raise RefreshTokenError("refresh token revoked; sign in again")
    settings = get_settings()
    return Token(access_token=create_access_token(user.id, token_version=user.token_version),
                 refresh_token=rotation.refresh_token, expires_in=settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60)


def logout(*, session: Session, refresh_token: str) -> None:
    """Revoke the sign-in (refresh token family) of ``refresh_token``; unknown tokens are ignored."""
    get_refresh_store(session).revoke(refresh_token)


def revoke_all_sessions(*, session: Session, user: User) -> None:
    """Invalidate every access and refresh token of ``user`` (raises ``token_version``; commits, with the
    audit event ``auth.sessions_revoked``)."""
    user.token_version += 1
    session.add(user)
    audit.record(session=session, actor=user, action="auth.sessions_revoked", target=user, commit=False)
    session.commit()
    get_refresh_store(session).revoke_user(user.id)


# --- e-mail tokens -----------------------------------------------------------------------------------


def _new_email_token(session: Session, user: User, purpose: TokenPurpose, lifetime: timedelta) -> str:
    token, digest = new_opaque_token()
    if purpose == TokenPurpose.password_reset:
        # Only the newest reset link works: an older mail someone may have seen is dead.
        session.execute(update(OneTimeToken).where(OneTimeToken.user_id == user.id,
                                                OneTimeToken.purpose == purpose,
                                                OneTimeToken.used_at.is_(None)).values(used_at=utcnow()))
    session.add(OneTimeToken(user_id=user.id, purpose=purpose, token_hash=digest,
                             expires_at=utcnow() + lifetime))
    return token


def _consume_email_token(session: Session, token: str, purpose: TokenPurpose) -> User:
    """Mark the token used (in the caller's transaction) and return its user; :class:`InvalidEmailToken`."""
    lock_for_write(session)
    row = session.exec(select(OneTimeToken).where(OneTimeToken.token_hash == hash_opaque_token(token),
                                                  OneTimeToken.purpose == purpose).with_for_update()).first()
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        session.rollback()
        raise InvalidEmailToken()
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        session.rollback()
        raise InvalidEmailToken()
    row.used_at = utcnow()
    session.add(row)
    return user


def _link(page: str, token: str) -> str:
    return f"{get_settings().FRONTEND_BASE_URL.rstrip('/')}/{page}?token={token}"


def send_verification(*, session: Session, user: User) -> None:
    """Store a verification token for ``user``, commit, and mail ``{FRONTEND_BASE_URL}/verify.html?token=``."""
    hours = get_settings().EMAIL_VERIFY_TOKEN_EXPIRE_HOURS
    token = _new_email_token(session, user, TokenPurpose.verify_email, timedelta(hours=hours))
    session.commit()
    mail.enqueue_email(user.email, "verify_email", {"email": user.email, "link": _link("verify.html", token),
                                                    "expire_hours": hours})


def register(*, session: Session, user_in: UserCreate) -> User:
    """Create a trader (:func:`users.create_user`, 409 for a taken e-mail) and mail the verification link."""
    user = users_service.create_user(session=session, user_in=user_in)
    audit.record(session=session, actor=user, action="auth.registered", target=user, commit=False)
    send_verification(session=session, user=user)
    session.refresh(user)
    return user


def resend_verification(*, session: Session, user: User) -> None:
    """Mail a new verification link; 409 when the e-mail is already verified."""
    if user.is_verified:
        raise ConflictError("email already verified")
    send_verification(session=session, user=user)


def verify_email(*, session: Session, token: str) -> User:
    """Mark the token's user verified (the token is used up). :class:`InvalidEmailToken` otherwise."""
    user = _consume_email_token(session, token, TokenPurpose.verify_email)
    user.is_verified = True
    session.add(user)
    audit.record(session=session, actor=user, action="auth.email_verified", target=user, commit=False)
    session.commit()
    session.refresh(user)
    return user


def enqueue_reset_request(email: str) -> None:
    """Send the ``auth.password_reset_request`` task (tests replace this function: the broker seam)."""
    from tradefleet.jobs.app import send_task

    try:
        send_task("auth.password_reset_request", email)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        log.error("cannot enqueue a password reset request: %s", exc)


def request_password_reset(*, email: str) -> None:
    """Ask for a reset link for ``email``. The API answers 202 whatever happens.

    Never reveals whether the e-mail has an account: the reply is the same, and the look-up, token and
    mail happen in a worker (``auth.password_reset_request``), so the reply also takes the same time.
    Otherwise anyone could test a list of addresses for accounts worth attacking.
    """
    enqueue_reset_request(users_service.normalise_email(email))


def send_password_reset(*, session: Session, email: str) -> bool:
    """Worker side of :func:`request_password_reset`: store a token and mail the link if ``email`` names
    an active account; True if a mail was enqueued."""
    user = users_service.get_user_by_email(session=session, email=email)
    if user is None or not user.is_active:
        return False
    minutes = get_settings().PASSWORD_RESET_TOKEN_EXPIRE_MINUTES
    token = _new_email_token(session, user, TokenPurpose.password_reset, timedelta(minutes=minutes))
    session.commit()
    mail.enqueue_email(user.email, "reset_password", {"email": user.email, "link": _link("reset.html", token),
                                                      "expire_minutes": minutes})
    return True


def _set_password(session: Session, user: User, new_password: str) -> None:
    user.hashed_password = hash_password(new_password)
    user.token_version += 1  # every access token issued before stops working
    session.add(user)
    session.execute(update(OneTimeToken).where(OneTimeToken.user_id == user.id,
                                            OneTimeToken.purpose == TokenPurpose.password_reset,
                                            OneTimeToken.used_at.is_(None)).values(used_at=utcnow()))


def confirm_password_reset(*, session: Session, token: str, new_password: str) -> User:
    """Set ``new_password`` for the token's user, use up the token, sign out every session, and lift every
    sign-in lock of the account (:func:`tradefleet.security.lockout.clear_account`: the owner proved
    they hold the mailbox). Never locked itself.

    The reset also verifies the e-mail: the link reached that mailbox. :class:`InvalidEmailToken`.
    """
    from tradefleet.security import lockout

    user = _consume_email_token(session, token, TokenPurpose.password_reset)
    _set_password(session, user, new_password)
    user.is_verified = True
    audit.record(session=session, actor=user, action="auth.password_reset", target=user,
                 detail={"sessions_revoked": True}, commit=False)
    session.commit()
    session.refresh(user)
    get_refresh_store(session).revoke_user(user.id)
    lockout.clear_account(user.email)
    mail.enqueue_email(user.email, "password_changed", {"email": user.email})
    return user


def change_password(*, session: Session, user: User, current_password: str, new_password: str) -> None:
    """Replace the password after checking ``current_password`` (400 on that field); signs out every
    session, the current one included."""
    if not verify_password(current_password, user.hashed_password):
        audit.record(session=session, actor=user, action="auth.password_change_failed", target=user,
                     detail={"reason": "incorrect current password"})
        raise DomainError("current_password: incorrect password", field="current_password", status_code=400)
    _set_password(session, user, new_password)
    audit.record(session=session, actor=user, action="auth.password_changed", target=user,
                 detail={"sessions_revoked": True}, commit=False)
    session.commit()
    get_refresh_store(session).revoke_user(user.id)
    mail.enqueue_email(user.email, "password_changed", {"email": user.email})


# --- two-factor --------------------------------------------------------------------------------------


def _lock_user(session: Session, user: User) -> User:
    """Re-read ``user`` with a write lock, so that two requests cannot both accept one code."""
    session.rollback()
    lock_for_write(session)
    locked = session.exec(select(User).where(User.id == user.id).with_for_update()).one()
    return locked


def check_second_factor(*, session: Session, user: User, code: str) -> bool:
    """True (committed) if ``code`` is a TOTP code of a step later than the last accepted one, or an
    unused recovery code (then used up). False otherwise, with nothing changed."""
    user = _lock_user(session, user)
    if user.totp_secret is None:
        session.rollback()
        return False
    try:
        secret = crypto.decrypt(user.totp_secret)
    except crypto.CryptoError:
        session.rollback()
        # The key that encrypted it is no longer configured: an operator error, not the user's.
        log.error("TOTP secret of user %s cannot be decrypted with the configured keys", user.id)
        raise DomainError("two-factor secret unreadable: the server's encryption keys changed; "
                          "contact an administrator", status_code=503) from None
    step = totp.matching_step(secret, code)
    if step is not None:
        if user.totp_last_step is not None and step <= user.totp_last_step:
            session.rollback()
            return False  # replayed (or older than one already used)
        user.totp_last_step = step
        session.add(user)
        session.commit()
        return True
    if not user.totp_enabled:
        session.rollback()
        return False
    digest = totp.hash_secret(totp.normalise_recovery_code(code))
    row = session.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id,
                                                  RecoveryCode.code_hash == digest,
                                                  RecoveryCode.used_at.is_(None))).first()
    if row is None:
        session.rollback()
        return False
    row.used_at = utcnow()
    session.add(row)
    left = session.exec(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None), RecoveryCode.id != row.id)).one()
    audit.record(session=session, actor=user, action="auth.recovery_code_used", target=user,
                 detail={"recovery_remaining": left}, commit=False)
    session.commit()
    return True


class IncorrectPassword(DomainError):
    """400 naming ``password``: the current password, asked again before a change to the sign-in itself."""

    status_code = 400
    detail = "password: incorrect password"

    def __init__(self) -> None:
        super().__init__(field="password")


def _require_password(user: User, password: str) -> None:
    # A stolen access token alone must not change how the account signs in.
    if not verify_password(password, user.hashed_password):
        raise IncorrectPassword()


def setup_totp(*, session: Session, user: User, password: str) -> dict[str, str]:
    """Start enrolment: a new secret (stored encrypted, not active yet) → ``{secret, otpauth_uri, qr_svg}``.

    Needs the current ``password`` (:class:`IncorrectPassword`, 400 on ``password``, nothing changed).
    409 when 2FA is already on (disable it first). Calling it again replaces a pending secret. The owner
    is e-mailed (``two_factor_changed``, event ``setup``).
    """
    if user.totp_enabled:
        raise ConflictError("two-factor authentication is already enabled; disable it first")
    _require_password(user, password)
    secret = totp.new_secret()
    user.totp_secret = crypto.encrypt(secret)
    user.totp_last_step = None
    session.add(user)
    audit.record(session=session, actor=user, action="auth.2fa_setup_started", target=user, commit=False)
    session.commit()
    mail.send_two_factor_changed(user=user, event="setup")
    uri = totp.otpauth_uri(secret, email=user.email, issuer=get_settings().PROJECT_NAME)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": totp.qr_svg(uri)}


def enable_totp(*, session: Session, user: User, password: str, code: str) -> list[str]:
    """Finish enrolment with the current ``password`` and a code from the app: 2FA on, and new recovery
    codes returned (shown once, stored hashed). The owner is e-mailed (event ``enabled``).

    409 without a pending setup or when already on; :class:`IncorrectPassword` (400 on ``password``);
    :class:`InvalidCode` (400 on ``code``). Nothing changes on an error."""
    if user.totp_enabled:
        raise ConflictError("two-factor authentication is already enabled")
    if user.totp_secret is None:
        raise ConflictError("call POST /users/me/2fa/setup first")
    _require_password(user, password)
    if not check_second_factor(session=session, user=user, code=code):
        raise InvalidCode()
    user = session.get(User, user.id)
    codes = totp.new_recovery_codes()
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    for code_ in codes:
        session.add(RecoveryCode(user_id=user.id, code_hash=totp.hash_secret(totp.normalise_recovery_code(code_))))
    user.totp_enabled = True
    session.add(user)
    audit.record(session=session, actor=user, action="auth.2fa_enabled", target=user, commit=False)
    session.commit()
    mail.send_two_factor_changed(user=user, event="enabled")
    return codes


def disable_totp(*, session: Session, user: User, password: str, code: str) -> None:
    """Turn 2FA off after checking the password (:class:`IncorrectPassword`, 400 on ``password``) and a
    TOTP or recovery code (:class:`InvalidCode`); the owner is e-mailed (event ``disabled``)."""
    if not user.totp_enabled:
        raise ConflictError("two-factor authentication is not enabled")
    _require_password(user, password)
    if not check_second_factor(session=session, user=user, code=code):
        raise InvalidCode()
    user = session.get(User, user.id)
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    user.totp_enabled = False
    user.totp_secret = None
    user.totp_last_step = None
    session.add(user)
    audit.record(session=session, actor=user, action="auth.2fa_disabled", target=user, commit=False)
    session.commit()
    mail.send_two_factor_changed(user=user, event="disabled")
