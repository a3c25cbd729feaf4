"""Who may decrypt: the API process never does (by construction and in fact), and paper runs never
hold or use credentials."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func
from sqlmodel import select

import tradefleet
from tradefleet.models import EquitySnapshot, ExchangeAccountCreate, Run, RunCreate
from tradefleet.security import vault
from tradefleet.services import exchange_accounts as account_service
from tradefleet.services import runs as run_service

PACKAGE = Path(tradefleet.__file__).parent
DECRYPTING = {"decrypt_field", "decrypt_credentials", "unlock_decryption", "unlocked", "rotate_all", "_open",
              "_open_legacy", "_private_boxes"}
WORKER_SIDE = "tradefleet.execution.keys"
MINUTE = 60_000
T0 = 1704067200000


def _offences(path: Path, *, allowed_function: str | None = None) -> list[str]:
    """Uses of the decrypting functions, or imports of the worker-side key module, in ``path``
    (outside ``allowed_function``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node: ast.AST, inside: str | None) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside = node.name
        allowed = allowed_function is not None and inside == allowed_function
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not allowed:
            module = getattr(node, "module", None) or ""
            names = {a.name for a in node.names}
            if module == WORKER_SIDE or WORKER_SIDE in names or (module == "tradefleet.execution" and "keys" in names):
                found.append(f"{path.name}:{node.lineno} imports {WORKER_SIDE}")
            if names & DECRYPTING:
                found.append(f"{path.name}:{node.lineno} imports {sorted(names & DECRYPTING)}")
        if isinstance(node, ast.Attribute) and node.attr in DECRYPTING and not allowed:
            found.append(f"{path.name}:{node.lineno} uses .{node.attr}")
        if isinstance(node, ast.Name) and node.id in DECRYPTING and not allowed:
            found.append(f"{path.name}:{node.lineno} uses {node.id}")
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, None)
    return found


def test_no_api_module_can_decrypt():
    api_files = sorted((PACKAGE / "api").rglob("*.py"))
    assert len(api_files) >= 8
    offences = [o for f in api_files for o in _offences(f)]
    # The API's services: the accounts service reaches the worker-side module only in the function
    # the live broker (a worker) calls.
    offences += _offences(PACKAGE / "services" / "exchange_accounts.py", allowed_function="live_broker_for_account")
    for name in ("runs.py", "live_runs.py", "admin_runs.py", "users.py", "backtests.py"):
        if (PACKAGE / "services" / name).exists():
            offences += _offences(PACKAGE / "services" / name)
    assert offences == []


def test_the_scan_would_see_a_decrypting_route(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from tradefleet.security.vault import decrypt_credentials\n"
                   "def route(a):\n    return vault.decrypt_field(a)\n")
    assert len(_offences(bad)) == 2


def test_the_api_process_never_loads_the_decrypting_module_nor_unlocks():
    code = ("import sys\nfrom tradefleet.api.main import create_app\ncreate_app()\n"
            "from tradefleet.security import vault\n"
            f"print(sorted(m for m in sys.modules if m == {WORKER_SIDE!r}), vault.decryption_unlocked())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "ENVIRONMENT": "test"})
    assert out.stdout.split() == ["[]", "False"]


def test_the_whole_api_flow_decrypts_nothing_even_when_it_could(user_client, check_queue):
    # Worst case: this process is unlocked like a worker. Every account route still decrypts nothing.
    before = vault.decryption_count()
    with vault.unlocked():
        body = {"exchange": "binance", "label": "x", "api_key": "k" * 40, "secret": "s" * 40}
        account_id = user_client.post("/api/v1/exchange-accounts", json=body).json()["id"]
        path = f"/api/v1/exchange-accounts/{account_id}"
        assert user_client.get("/api/v1/exchange-accounts").status_code == 200
        assert user_client.get(path).status_code == 200
        assert user_client.patch(path, json={"secret": "t" * 40, "label": "y"}).status_code == 200
        assert user_client.post(f"{path}/check").status_code == 202
        assert user_client.delete(path).status_code == 204
    assert vault.decryption_count() == before
    assert len(check_queue.ids) == 3


def test_a_paper_run_with_an_exchange_account_is_refused(user_client, market_catalog, session, check_queue):
    body = {"exchange": "binance", "label": "x", "api_key": "k" * 40, "secret": "s" * 40}
    account_id = user_client.post("/api/v1/exchange-accounts", json=body).json()["id"]
    run = {"strategy": "sma_cross", "params": {}, "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m",
           "mode": "paper", "stake": 1000, "exchange_account_id": account_id}
    reply = user_client.post("/api/v1/runs", json=run)
    assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == "exchange_account_id"
    assert session.exec(select(func.count()).select_from(Run)).one() == 0
    # Without the account it is an ordinary paper run, holding no credentials.
    del run["exchange_account_id"]
    created = user_client.post("/api/v1/runs", json=run)
    assert created.status_code == 201 and created.json()["exchange_account_id"] is None


def test_paper_ticks_never_decrypt(session, market_catalog, make_user, check_queue):
    from tradefleet.engine.evaluate import evaluate_market
    from tradefleet.engine.schedule import plan

    user, _ = make_user()
    # The owner has keys stored; the paper run must not touch them.
    account_service.create_account(session=session, owner=user, account_in=ExchangeAccountCreate(
        exchange="binance", label="keys", api_key="k" * 40, secret="s" * 40))
    run = run_service.create_run(session=session, owner=user, run_in=RunCreate(
        strategy="sma_cross", params={"fast": 3, "slow": 8}, exchange="binance", symbol="BTC/USDT",
        timeframe="1m", mode="paper", stake=1000.0))
    run_service.start_run(session=session, owner=user, run_id=run.id)
    before = vault.decryption_count()
    with vault.unlocked():  # as in a worker process
        for minute in range(10, 40):
            market_catalog.clock.set(T0 + minute * MINUTE + 1)
            for d in plan():
                evaluate_market(d.market, d.candle_ms, d.run_ids, limit=d.limit)
    assert vault.decryption_count() == before
    ticks = session.exec(select(func.count()).select_from(EquitySnapshot).where(EquitySnapshot.run_id == run.id)).one()
    assert ticks >= 25
    session.expire_all()
    assert session.get(Run, run.id).exchange_account_id is None
