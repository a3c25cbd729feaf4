"""Users: sign-up, look-up by e-mail and password authentication."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from tradefleet.errors import ConflictError, validation_error
from tradefleet.models import Role, User, UserCreate
from tradefleet.security.passwords import dummy_hash, hash_password, verify_and_update, verify_password


class EmailAlreadyRegistered(ConflictError):
    """409 on sign-up with an e-mail that already has an account.

    409 rather than 400: the body is valid, it clashes with existing state. Sign-up necessarily tells
    whether an e-mail is registered; login and password reset must not (see :func:`authenticate`).
    """

    detail = "email already registered"

    def __init__(self) -> None:
        super().__init__(field="email")


def normalise_email(email: str) -> str:
    """The stored form of an e-mail: trimmed and lower-cased (so ``Bob@X.com`` and ``bob@x.com`` are one account)."""
    return email.strip().lower()


def get_user_by_email(*, session: Session, email: str) -> User | None:
    """The user with this e-mail (compared after :func:`normalise_email`), or None."""
    return session.exec(select(User).where(User.email == normalise_email(email))).first()


def create_user(*, session: Session, user_in: UserCreate, role: Role = Role.trader,
                is_verified: bool = False) -> User:
    """Create and commit a user with an argon2 hash of ``user_in.password``.

    Raises :class:`EmailAlreadyRegistered` when the e-mail (normalised) is taken, including when a
    concurrent sign-up wins the race (the unique index on ``user.email`` decides).
    """
    email = normalise_email(str(user_in.email))
    if get_user_by_email(session=session, email=email) is not None:
        raise EmailAlreadyRegistered()
    user = User(email=email, hashed_password=hash_password(user_in.password), role=role,
                is_verified=is_verified)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise EmailAlreadyRegistered() from None
    session.refresh(user)
    return user


def authenticate(*, session: Session, email: str, password: str) -> User | None:
    """The user whose e-mail and password match, or None.

    Inactive users are returned too (the caller decides what to say, after the password proved who they
    are). A stored hash with outdated argon2 parameters is replaced and committed on success.
    """
    user = get_user_by_email(session=session, email=email)
    if user is None:
        # Verify against a dummy hash anyway: skipping the (deliberately slow) argon2 check would make
        # unknown e-mails answer measurably faster, letting anyone enumerate registered accounts.
        verify_password(password, dummy_hash())
        return None
    matches, new_hash = verify_and_update(password, user.hashed_password)
    if not matches:
        return None
    if new_hash is not None:
        user.hashed_password = new_hash
        session.add(user)
        session.commit()
        session.refresh(user)
    return user


# --- administration --------------------------------------------------------------------


def list_users(*, session: Session, q: str | None = None, role: Role | None = None, limit: int = 100,
               offset: int = 0) -> tuple[list[User], int]:
    """Users whose e-mail contains ``q`` (case-insensitive) and of ``role``, oldest first, with the
    total count of matches (for paging)."""
    from sqlalchemy import func

    where = []
    if q:
        escaped = q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(User.email.like(f"%{escaped}%", escape="\\"))
    if role is not None:
        where.append(User.role == role)
    count = session.exec(select(func.count()).select_from(User).where(*where)).one()
    users = session.exec(select(User).where(*where).order_by(User.created_at, User.id)
                         .offset(offset).limit(limit)).all()
    return list(users), count


class CannotChangeSelf(ConflictError):
    detail = "admins cannot demote or disable themselves; ask another admin"


def admin_update_user(*, session: Session, admin: User, user_id, update) -> User:  # noqa: ANN001
    """Apply ``update`` (:class:`~tradefleet.models.UserAdminUpdate`) to the user ``user_id``.

    404 for an unknown user; 409 (:class:`CannotChangeSelf`) when ``admin`` would demote or disable
    themselves (the platform must keep an admin who can undo it). Disabling signs the user out everywhere
    (``token_version`` raised, refresh tokens revoked). Role and status changes are written to the audit log.
    """
    from tradefleet.errors import NotFoundError
    from tradefleet.services import audit
    from tradefleet.services.auth_tokens import get_refresh_store

    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError("user not found")
    if user.id == admin.id and ((update.role is not None and update.role != Role.admin)
                                or update.is_active is False):
        raise CannotChangeSelf()
    changes: dict[str, list] = {}
    if update.role is not None and update.role != user.role:
        changes["role"] = [user.role.value, update.role.value]
        user.role = update.role
    disabled = False
    if update.is_active is not None and update.is_active != user.is_active:
        changes["is_active"] = [user.is_active, update.is_active]
        user.is_active = update.is_active
        if not update.is_active:
            user.token_version += 1
            disabled = True
    if not changes:
        return user
    session.add(user)
    if "role" in changes:
        audit.record(session=session, actor=admin, action="user.role_changed", target=user,
                     detail={"from": changes["role"][0], "to": changes["role"][1]}, commit=False)
    if "is_active" in changes:
        audit.record(session=session, actor=admin, action="user.disabled" if disabled else "user.enabled",
                     target=user, commit=False)
    session.commit()
    session.refresh(user)
    if disabled:
        get_refresh_store(session).revoke_user(user.id)
    return user


def update_profile(*, session: Session, user: User, display_name: str | None) -> User:
    """Set the user's public ``display_name`` (shown as the author of their strategies; None: the
    e-mail's local part) and commit. 422 on ``display_name`` for a blank name or control characters."""
    if display_name is not None:
        display_name = " ".join(display_name.split())
        if not display_name:
            raise validation_error("display_name", "must not be blank (send null for the default)")
        if any(not ch.isprintable() for ch in display_name):
            raise validation_error("display_name", "must not hold control characters")
    user.display_name = display_name
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


class AccountExists(ConflictError):
    """409: ``create-admin`` on an e-mail that already has an account (promote it explicitly)."""

    detail = "email already registered"

    def __init__(self, user: User) -> None:
        self.user = user
        super().__init__(f"{user.email} already has an account ({user.role.value}, created "
                         f"{user.created_at:%Y-%m-%d %H:%M} UTC); to make it an admin, give "
                         "--promote-existing: its password is replaced and every session signed out",
                         field="email")


def create_admin(*, session: Session, email: str, password: str) -> User:
    """A new verified admin account with ``password`` (committed).

    Raises ``pydantic.ValidationError`` (from :class:`UserCreate`) for an invalid e-mail or password and
    :class:`AccountExists` when the e-mail already has an account: someone may have registered the
    address first, so the operator must say :func:`promote_to_admin` explicitly."""
    user_in = UserCreate(email=email, password=password)
    existing = get_user_by_email(session=session, email=user_in.email)
    if existing is not None:
        raise AccountExists(existing)
    return create_user(session=session, user_in=user_in, role=Role.admin, is_verified=True)


def promote_to_admin(*, session: Session, email: str, password: str) -> tuple[User, list[str]]:
    """Make the existing account of ``email`` an admin that only the operator can enter; returns
    ``(user, actions)``, ``actions`` a list of one-line sentences saying what was changed.

    The account may have been registered by anyone, so it is taken over: role admin, the typed
    ``password`` set, the address marked verified, the account enabled, any two-factor enrolment and
    recovery codes removed (they would be someone else's authenticator), unused e-mail links voided,
    every session revoked (``token_version`` raised, refresh tokens revoked) and sign-in locks lifted.
    Raises ``pydantic.ValidationError`` for an invalid e-mail or password, ``LookupError`` when no
    account has that e-mail."""
    from sqlalchemy import delete, update

    from tradefleet.models import OneTimeToken, RecoveryCode
    from tradefleet.models._types import utcnow
    from tradefleet.security import lockout
    from tradefleet.services import audit
    from tradefleet.services.auth_tokens import get_refresh_store

    user_in = UserCreate(email=email, password=password)
    user = get_user_by_email(session=session, email=user_in.email)
    if user is None:
        raise LookupError(f"no account has the e-mail {user_in.email}")
    actions = [f"role: {user.role.value} -> admin" if user.role != Role.admin else "role: already admin"]
    user.role = Role.admin
    user.hashed_password = hash_password(password)
    actions.append("password: replaced by the one given")
    if not user.is_verified:
        actions.append("e-mail: marked verified")
    user.is_verified = True
    if not user.is_active:
        actions.append("account: re-enabled")
    user.is_active = True
    if user.totp_enabled or user.totp_secret is not None:
        actions.append("two-factor: removed (" + ("was on" if user.totp_enabled else "a set-up was pending")
                       + "); enrol again after signing in")
    user.totp_enabled = False
    user.totp_secret = None
    user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    voided = session.execute(update(OneTimeToken).where(OneTimeToken.user_id == user.id,
                                                        OneTimeToken.used_at.is_(None))
                             .values(used_at=utcnow())).rowcount
    if voided:
        actions.append(f"e-mail links: {voided} unused link(s) voided")
    user.token_version += 1
    session.add(user)
    audit.record(session=session, actor=None, actor_email="create-admin", action="user.promoted_admin",
                 target=user, detail={"actions": actions}, commit=False)
    session.commit()
    get_refresh_store(session).revoke_user(user.id)
    lockout.clear_account(user.email)
    actions.append("sessions: every access and refresh token revoked")
    session.refresh(user)
    return user, actions
