"""Fixtures of the sandbox tests: the sandbox itself (``sandbox_available``: skipped without it, failed
with ``CI=true``), planted canary secrets, and a TCP listener that counts who reached it."""

from __future__ import annotations

import secrets
import shutil
import socket
import threading
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sandbox_helpers import Canaries, Listener
from support.common import unavailable

from tradefleet.config import REPO_ROOT


@pytest.fixture
def sandbox_available() -> None:
    """The escape tests need bubblewrap and the seccomp binding (``make test`` installs them): skipped
    without them, failed with ``CI=true``. Not autouse: other tests here run without a sandbox on purpose."""
    from tradefleet.sandbox import sandbox_status

    status = sandbox_status()
    if not status.available:
        unavailable(f"strategy sandbox unavailable: {status.reason}")


@pytest.fixture
def canaries(settings_env) -> Iterator[Canaries]:
    """``JWT_SECRET_KEY`` and ``API_ENCRYPTION_KEYS`` of this process set to random canaries, a canary
    file under the repository's ``var/`` (removed afterwards), and the content of the real
    ``var/dev-api-encryption.key`` when this machine has one."""
    jwt = "canaryjwt" + secrets.token_hex(24)
    fernet = Fernet.generate_key().decode()
    settings_env(JWT_SECRET_KEY=jwt, API_ENCRYPTION_KEYS=fernet)
    var = REPO_ROOT / "var"
    made_var = not var.exists()
    var.mkdir(exist_ok=True)
    var_file = var / f"sandbox-canary-{secrets.token_hex(4)}.txt"
    file_secret = "canaryfile" + secrets.token_hex(24)
    var_file.write_text(file_secret)
    values = {"JWT_SECRET_KEY": jwt, "API_ENCRYPTION_KEYS": fernet, "var file": file_secret,
              "database row": "canarydb" + secrets.token_hex(12)}
    dev_key = var / "dev-api-encryption.key"
    if dev_key.is_file() and len(dev_key.read_text().strip()) >= 20:
        values["dev-api-encryption.key"] = dev_key.read_text().strip()
    try:
        yield Canaries(values=values, var_file=var_file)
    finally:
        var_file.unlink(missing_ok=True)
        if made_var:
            shutil.rmtree(var, ignore_errors=True)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    state = Listener(port=server.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            state.accepted += 1
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()
