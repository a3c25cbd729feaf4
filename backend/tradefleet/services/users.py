"""Users: sign-up, look-up by e-mail and password authentication."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from tradefleet.errors import ConflictError
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
