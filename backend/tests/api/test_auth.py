"""Sign-up, login, ``/users/me``, tokens and the error format, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import Session, select

from tradefleet.api.errors import NotFoundError, install_error_handlers, validation_error
from tradefleet.models import Role, User
from tradefleet.security import tokens
from tradefleet.security.passwords import verify_password
from tradefleet.services import users as users_service

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"
PASSWORD = "correct horse battery"


def user_count(session: Session) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(User)).one()


def stored_user(session: Session, email: str) -> User | None:
    session.expire_all()
    return session.exec(select(User).where(User.email == email)).first()


def login(client: TestClient, email: str, password: str):
    return client.post(LOGIN, data={"username": email, "password": password})


# --- register ------------------------------------------------------------------------------------


def test_register_creates_trader_with_normalised_email(client, session):
    response = client.post(REGISTER, json={"email": "Alice.Smith@Example.COM", "password": PASSWORD})

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "alice.smith@example.com"
    assert body["role"] == "trader"
    assert body["is_active"] is True and body["is_verified"] is False
    uuid.UUID(body["id"])
    assert "password" not in body and "hashed_password" not in body
    assert PASSWORD not in response.text
    row = stored_user(session, "alice.smith@example.com")
    assert row is not None and str(row.id) == body["id"]


def test_register_stores_an_argon2_hash_not_the_password(client, session):
    client.post(REGISTER, json={"email": "hash@example.com", "password": PASSWORD})

    row = stored_user(session, "hash@example.com")
    assert row.hashed_password.startswith("$argon2id$")
    assert PASSWORD not in row.hashed_password
    assert verify_password(PASSWORD, row.hashed_password)
    assert not verify_password(PASSWORD + "x", row.hashed_password)


def test_register_refuses_a_requested_role(client, session):
    response = client.post(REGISTER, json={"email": "sneaky@example.com", "password": PASSWORD,
                                           "role": "admin", "is_verified": True})

    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"role", "is_verified"}
    assert stored_user(session, "sneaky@example.com") is None


def test_register_duplicate_email_is_409_whatever_the_case(client, session):
    assert client.post(REGISTER, json={"email": "dup@example.com", "password": PASSWORD}).status_code == 201

    response = client.post(REGISTER, json={"email": "DUP@Example.com", "password": "another password"})

    assert response.status_code == 409
    assert response.json() == {"detail": "email already registered",
                               "errors": [{"field": "email", "message": "email already registered"}]}
    assert user_count(session) == 1


@pytest.mark.parametrize("password", ["short-pw1", "x" * 129], ids=["9-chars", "129-chars"])
def test_register_rejects_password_length_naming_the_field(client, session, password):
    response = client.post(REGISTER, json={"email": "weak@example.com", "password": password})

    assert response.status_code == 422
    body = response.json()
    assert [e["field"] for e in body["errors"]] == ["password"]
    assert body["detail"].startswith("password: ")
    assert password not in response.text  # submitted values are never echoed
    assert user_count(session) == 0


def test_register_rejects_invalid_email(client, session):
    response = client.post(REGISTER, json={"email": "not-an-email", "password": PASSWORD})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["email"]
    assert user_count(session) == 0


def test_register_malformed_json_is_422_on_body(client, session):
    response = client.post(REGISTER, content=b'{"email": "a@example.com", "password": ',
                           headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert len(errors) == 1 and errors[0]["field"] == "body"
    assert errors[0]["message"].startswith("malformed JSON")
    assert user_count(session) == 0


def test_register_missing_fields_are_all_reported(client, session):
    response = client.post(REGISTER, json={})

    assert response.status_code == 422
    assert sorted(e["field"] for e in response.json()["errors"]) == ["email", "password"]
    assert user_count(session) == 0


# --- login ---------------------------------------------------------------------------------------


def test_login_returns_a_bearer_token_for_the_user(client, make_user):
    user, password = make_user(email="login@example.com")

    response = login(client, "Login@Example.com", password)  # e-mail is case-insensitive

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert tokens.decode_access_token(body["access_token"]) == user.id
    assert password not in response.text
    me = client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == str(user.id)


def test_login_wrong_password_and_unknown_email_answer_identically(client, make_user):
    make_user(email="known@example.com", password=PASSWORD)

    wrong_password = login(client, "known@example.com", "wrong password!")
    unknown_email = login(client, "nobody@example.com", PASSWORD)

    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert wrong_password.json() == unknown_email.json() == {"detail": "incorrect email or password"}


def test_login_with_unknown_email_still_checks_a_hash(session, monkeypatch):
    # Timing: an unknown e-mail must cost one argon2 verification like a known one.
    calls = []
    real = users_service.verify_password
    monkeypatch.setattr(users_service, "verify_password",
                        lambda pw, hashed: calls.append(hashed) or real(pw, hashed))

    assert users_service.authenticate(session=session, email="ghost@example.com", password=PASSWORD) is None
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def test_login_inactive_user_is_403_only_with_the_right_password(client, make_user):
    _, password = make_user(email="off@example.com", is_active=False)

    assert login(client, "off@example.com", "wrong password!").status_code == 401
    response = login(client, "off@example.com", password)
    assert response.status_code == 403
    assert response.json() == {"detail": "account disabled"}
    assert "access_token" not in response.text


def test_login_requires_form_fields(client):
    response = client.post(LOGIN, data={"username": "a@example.com"})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["password"]


# --- /users/me -----------------------------------------------------------------------------------


def test_me_returns_the_public_user(client, make_user, auth_headers):
    user, password = make_user(email="me@example.com", role=Role.author)

    response = client.get(ME, headers=auth_headers(user))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(user.id) and body["email"] == "me@example.com" and body["role"] == "author"
    assert set(body) == {"id", "email", "role", "is_active", "is_verified", "totp_enabled", "created_at", "display_name"}
    assert password not in response.text


def test_user_client_is_signed_in(user_client):
    response = user_client.get(ME)

    assert response.status_code == 200
    assert response.json()["email"] == user_client.user.email


def test_me_without_token_is_401(client):
    response = client.get(ME)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert set(response.json()) == {"detail"}


def _claims(user_id: uuid.UUID, **overrides) -> dict:
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + timedelta(minutes=5), "type": "access",
              "jti": uuid.uuid4().hex}
    claims.update(overrides)
    return claims


@pytest.mark.parametrize("kind", ["forged", "alg-none", "wrong-type", "garbage"])
def test_me_rejects_bad_tokens(client, make_user, kind):
    user, _ = make_user()
    token = {
        "forged": lambda: jwt.encode(_claims(user.id), "another-key-" + "k" * 40, algorithm="HS256"),
        "alg-none": lambda: jwt.encode(_claims(user.id), None, algorithm="none"),
        "wrong-type": lambda: tokens._encode(subject=str(user.id), token_type="refresh",
                                             expires_delta=timedelta(minutes=5)),
        "garbage": lambda: "not.a.jwt",
    }[kind]()

    response = client.get(ME, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "invalid token"}


def test_me_rejects_an_expired_token(client, make_user):
    user, _ = make_user()
    token = tokens.create_access_token(user.id, expires_delta=timedelta(seconds=-1))

    response = client.get(ME, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.json() == {"detail": "token expired"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_me_rejects_tokens_of_deactivated_or_deleted_users(client, session, make_user, auth_headers):
    user, _ = make_user()
    headers = auth_headers(user)
    assert client.get(ME, headers=headers).status_code == 200

    user.is_active = False
    session.add(user)
    session.commit()
    assert client.get(ME, headers=headers).status_code == 401

    session.delete(user)
    session.commit()
    response = client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


# --- tokens (no database) ------------------------------------------------------------------------


def test_access_token_claims_and_round_trip(settings_env):
    settings = settings_env(ACCESS_TOKEN_EXPIRE_MINUTES=7)
    user_id = uuid.uuid4()

    token = tokens.create_access_token(user_id)

    claims = jwt.decode(token, settings.JWT_SECRET_KEY.get_secret_value(), algorithms=["HS256"])
    assert claims["sub"] == str(user_id) and claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == 7 * 60
    assert tokens.decode_access_token(token) == user_id
    # jti makes every token unique, even two issued in the same second:
    assert jwt.decode(tokens.create_access_token(user_id), options={"verify_signature": False})["jti"] \
        != claims["jti"]


def test_token_signed_before_a_key_change_is_rejected(settings_env):
    token = tokens.create_access_token(uuid.uuid4())
    settings_env(JWT_SECRET_KEY="a-rotated-secret-" + "r" * 40)

    with pytest.raises(tokens.TokenError, match="invalid token"):
        tokens.decode_access_token(token)


def test_token_with_missing_claim_or_bad_subject_is_rejected(settings_env):
    secret = settings_env().JWT_SECRET_KEY.get_secret_value()
    no_jti = _claims(uuid.uuid4())
    del no_jti["jti"]

    for claims in (no_jti, _claims(uuid.uuid4(), sub="not-a-uuid")):
        with pytest.raises(tokens.TokenError):
            tokens.decode_access_token(jwt.encode(claims, secret, algorithm="HS256"))


# --- error format (no database) ------------------------------------------------------------------


class _Body(BaseModel):
    fast: int


class _Params(BaseModel):
    params: _Body


@pytest.fixture
def error_client() -> TestClient:
    """A bare app with the error handlers and routes that fail in each way."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    def echo(body: _Params) -> dict:
        return body.model_dump()

    @app.get("/domain-422")
    def domain_422() -> None:
        raise validation_error("params.fast", "must be below slow")

    @app.get("/missing")
    def missing() -> None:
        raise NotFoundError("run not found")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("SELECT hashed_password FROM user -- secret")

    return TestClient(app, raise_server_exceptions=False)


def test_nested_validation_error_field_is_a_dotted_path(error_client):
    response = error_client.post("/echo", json={"params": {"fast": "abc"}})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["params.fast"]
    assert "abc" not in response.text


def test_domain_validation_error_has_the_same_shape(error_client):
    response = error_client.get("/domain-422")

    assert response.status_code == 422
    assert response.json() == {"detail": "params.fast: must be below slow",
                               "errors": [{"field": "params.fast", "message": "must be below slow"}]}


def test_domain_and_http_errors_keep_status_and_detail(error_client):
    assert error_client.get("/missing").status_code == 404
    assert error_client.get("/missing").json() == {"detail": "run not found"}
    assert error_client.get("/nowhere").json() == {"detail": "Not Found"}


def test_unhandled_error_is_500_without_details(error_client, caplog):
    response = error_client.get("/boom")

    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert "SELECT" not in response.text
    logged = [r for r in caplog.records if r.name == "tradefleet.api.errors"]
    assert len(logged) == 1 and "GET /boom" in logged[0].getMessage()
    assert isinstance(logged[0].exc_info[1], RuntimeError)  # the trace goes to the log
