"""``tradefleet create-admin``: an admin account from the command line."""

from __future__ import annotations

from typing import Optional

import typer


def create_admin(
    email: str = typer.Option(..., help="the admin's e-mail"),
    password: Optional[str] = typer.Option(None, help="at least 10 characters; prompted (hidden) when omitted"),
    promote_existing: bool = typer.Option(
        False, "--promote-existing",
        help="if the e-mail already has an account, take it over as admin: set this password, mark the "
             "address verified, remove its 2FA and sign out every session"),
) -> None:
    """Create a verified admin account. An existing account is refused (exit 1) unless
    --promote-existing is given: anyone may have registered the address first."""
    from pydantic import ValidationError

    from tradefleet.db import session_scope
    from tradefleet.services.users import AccountExists, promote_to_admin
    from tradefleet.services.users import create_admin as make_admin

    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope() as session:
            if promote_existing:
                try:
                    user, actions = promote_to_admin(session=session, email=email, password=password)
                except LookupError:
                    user, actions = make_admin(session=session, email=email, password=password), None
            else:
                user, actions = make_admin(session=session, email=email, password=password), None
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: {fields}", err=True)
        raise typer.Exit(2) from None
    except AccountExists as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    if actions is None:
        typer.echo(f"created admin: {user.email} ({user.id})")
        return
    typer.echo(f"promoted to admin: {user.email} ({user.id})")
    for line in actions:
        typer.echo(f"  {line}")
