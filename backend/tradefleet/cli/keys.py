"""``tradefleet keys ...``: the vault of exchange API keys (generate, rotate, migrate-sealed, status)."""

from __future__ import annotations

import typer

from tradefleet.config import get_settings

keys_app = typer.Typer(help="The vault of exchange API keys (VAULT_PUBLIC_KEYS, VAULT_PRIVATE_KEYS; see "
                       "SECRETS.md).", no_args_is_help=True)


@keys_app.command("generate")
def keys_generate(
    totp: bool = typer.Option(False, "--totp", help="print a Fernet key for TOTP_ENCRYPTION_KEY instead"),
) -> None:
    """Print a new vault key pair: the public key goes first in VAULT_PUBLIC_KEYS of every process,
    the private key into VAULT_PRIVATE_KEYS of the workers only; then `keys rotate`."""
    if totp:
        from tradefleet.security.crypto import generate_key

        typer.echo(generate_key())
        return
    from tradefleet.security.vault import generate_key_pair

    pair = generate_key_pair()
    typer.echo(f"# vault key pair {pair.key_id}: the public key for every process, the private key for workers only")
    typer.echo(f"VAULT_PUBLIC_KEY={pair.public}")
    typer.echo(f"VAULT_PRIVATE_KEY={pair.private}")


def _report_rotation(report, *, legacy_only: bool) -> None:  # noqa: ANN001 - a RotationReport
    from tradefleet.security.vault import newest_key_id

    newest = newest_key_id()
    typer.echo(f"re-sealed {report.tokens} tokens of {report.accounts} exchange accounts to key {newest}; "
               f"{report.current} accounts were already sealed to it")
    if legacy_only and report.left_sealed:
        typer.echo(f"{report.left_sealed} accounts keep tokens sealed to an older public key (`keys rotate` "
                   "re-seals them)")
    typer.echo(f"re-encrypted {report.totp_secrets} two-factor secrets")
    if report.failed:
        typer.echo(f"error: {len(report.failed)} accounts have tokens that could not be opened (left unchanged):",
                   err=True)
        for account_id in report.failed:
            typer.echo(f"  {account_id}: {report.reasons.get(account_id, '')}", err=True)
    if report.failed_users:
        typer.echo(f"error: {len(report.failed_users)} users have two-factor secrets that no configured key "
                   f"opens (left unchanged): {', '.join(map(str, report.failed_users))}", err=True)
    if report.failed or report.failed_users:
        raise typer.Exit(1)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-seal every stored exchange key to the newest key of VAULT_PUBLIC_KEYS (opening the others
    with VAULT_PRIVATE_KEYS, and tokens of the symmetric vault with API_ENCRYPTION_KEYS), and
    re-encrypt every two-factor secret under the newest TOTP_ENCRYPTION_KEY.

    Exits 1 (changing none of them) for accounts with a token no given key opens, naming them."""
    from tradefleet.db import session_scope
    from tradefleet.security import vault

    try:
        vault.newest_key_id()
    except vault.VaultError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with vault.unlocked(), session_scope() as session:
        report = vault.rotate_all(session=session)
    _report_rotation(report, legacy_only=False)


@keys_app.command("migrate-sealed")
def keys_migrate_sealed() -> None:
    """Re-seal the exchange keys still encrypted by the symmetric vault (Fernet, API_ENCRYPTION_KEYS)
    to the newest key of VAULT_PUBLIC_KEYS, and re-encrypt two-factor secrets under the newest
    TOTP_ENCRYPTION_KEY. Needs no private key. Run once after upgrading, with API_ENCRYPTION_KEYS set
    for this command only; then remove API_ENCRYPTION_KEYS everywhere (SECRETS.md).

    Exits 1 (changing none of them) for accounts with a token no key of API_ENCRYPTION_KEYS opens."""
    from tradefleet.db import session_scope
    from tradefleet.security import vault

    try:
        vault.newest_key_id()
    except vault.VaultError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with session_scope() as session:
        report = vault.rotate_all(session=session, sealed=False)
    _report_rotation(report, legacy_only=True)


@keys_app.command("status")
def keys_status() -> None:
    """How many exchange accounts have every token sealed to each public key, and how many hold
    tokens of the symmetric vault or of several keys (read from the tokens; nothing is opened)."""
    from collections import Counter

    from sqlmodel import select

    from tradefleet.db import session_scope
    from tradefleet.models import ExchangeAccount
    from tradefleet.security import vault

    counts: Counter[str] = Counter()
    with session_scope() as session:
        for account in session.exec(select(ExchangeAccount)).all():
            tokens = [getattr(account, c) for c in vault.ENCRYPTED_COLUMNS if getattr(account, c)]
            ids = {vault.token_key_id(t) for t in tokens}
            if None in ids:
                counts["symmetric vault (run `keys migrate-sealed`)"] += 1
            elif len(ids) > 1:
                counts["several keys (run `keys rotate`)"] += 1
            else:
                counts[f"key {ids.pop()}"] += 1
    newest = vault.newest_key_id() if get_settings().VAULT_PUBLIC_KEYS else None
    typer.echo(f"newest public key: {newest or '(VAULT_PUBLIC_KEYS is not set)'}")
    if not counts:
        typer.echo("no exchange accounts")
    for what, count in sorted(counts.items()):
        typer.echo(f"{count:6d}  {what}{'  (newest)' if newest and what == f'key {newest}' else ''}")
