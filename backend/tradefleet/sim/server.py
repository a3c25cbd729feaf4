"""Running the simulator: in the foreground (the ``tradefleet exchange-sim`` CLI) or in a thread (tests)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from tradefleet.sim.app import create_app
from tradefleet.sim.data import DEFAULT_DATA_DIR


def serve(
    *,
    data_dir: Path = DEFAULT_DATA_DIR,
    host: str = "127.0.0.1",
    port: int = 8100,
    speed: float = 60.0,
    start_ms: int | None = None,
    log_level: str = "info",
    accounts_file: Path | None = None,
    state_file: Path | None = None,
    enforce_rate_limits: bool = False,
) -> None:
    """Serve the simulator with uvicorn until interrupted (blocks).

    Point ccxt at it with ``EXCHANGE_API_URLS={"binance": "http://<host>:<port>"}``.
    ``start_ms``: sim start time, ms since the epoch UTC (default: first recorded candle);
    ``speed``: sim ms per wall ms (0 = frozen). ``accounts_file``: JSON list of account specs
    (:mod:`tradefleet.sim.accounts`) to provision; ``state_file``: keep accounts, orders and trades
    there across restarts. ``enforce_rate_limits``: answer 429 like Binance over 6000 request weight
    per minute per IP or 100 new orders per 10 s per account. Raises ``FileNotFoundError`` without data.
    """
    from tradefleet.sim.accounts import load_accounts_file

    accounts = load_accounts_file(accounts_file) if accounts_file else None
    app = create_app(data_dir=Path(data_dir), speed=speed, start_ms=start_ms, accounts=accounts,
                     state_file=state_file, weight_limit=6000 if enforce_rate_limits else None,
                     order_limit_10s=100 if enforce_rate_limits else None)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


class BackgroundServer:
    """A uvicorn server for an ASGI ``app`` in a daemon thread, e.g. for tests or an in-process benchmark.

    ``port=0`` picks a free port. Use as a context manager or call :meth:`start` / :meth:`stop`;
    :attr:`base_url` is ``"http://<host>:<port>"`` once started.
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``"http://<host>:<port>"`` (the real port once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        """Start serving; returns once the socket listens. Raises ``RuntimeError`` on failure."""
        self._thread = threading.Thread(target=self._server.run, name="tradefleet-sim", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator server did not start")
            time.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
