"""Gunicorn settings of the Tradefleet API (``gunicorn --config backend/gunicorn_conf.py
tradefleet.api.main:app``; the command of ``backend/Dockerfile.web``).

Gunicorn manages the processes, each an asyncio server of the ``uvicorn-worker`` package
(``uvicorn_worker.UvicornWorker``; ``uvicorn.workers`` is deprecated). Every value can be set from the
environment:

- ``GUNICORN_WORKERS``: worker processes; default ``2 x CPUs + 1`` capped at 8 (each holds its own database
  pool of ``DB_POOL_SIZE + DB_MAX_OVERFLOW`` connections, see the connection budget in DEPLOYMENT.md);
- ``GUNICORN_BIND``: ``host:port``, default ``0.0.0.0:8000`` (inside the container; the compose files
  publish it on ``127.0.0.1:8000`` of the host only);
- ``GUNICORN_TIMEOUT`` (s, default 60): a worker silent for that long is killed and replaced (uvicorn
  workers heartbeat from their event loop, so only a blocked loop trips it; long requests such as the event
  stream do not);
- ``GUNICORN_GRACEFUL_TIMEOUT`` (s, default 30): after SIGTERM, how long workers may finish their requests
  before they are killed (compose's ``stop_grace_period`` is longer);
- ``GUNICORN_KEEPALIVE`` (s, default 5): idle keep-alive connections from the host Nginx are closed after;
- ``FORWARDED_ALLOW_IPS``: peers whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed (comma-
  separated addresses or networks), default ``127.0.0.1``. Behind the host Nginx and Docker's port
  publishing the peer is the compose network's gateway: the production compose file sets the network.
- ``GUNICORN_LOG_LEVEL`` (default ``info``); the access log goes to stdout, one line per request:
  time, client, request line, status (uvicorn's access record through gunicorn's access handler).
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def default_workers(cpus: int | None = None) -> int:
    """``2 x cpus + 1``, at most 8 (``cpus``: this machine's count by default)."""
    cpus = multiprocessing.cpu_count() if cpus is None else cpus
    return min(2 * cpus + 1, 8)


worker_class = "uvicorn_worker.UvicornWorker"
workers = _int("GUNICORN_WORKERS", default_workers())
bind = [os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")]
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The application is imported in each worker, after the fork: no database pool or Redis connection is
# shared between processes.
preload_app = False
# Worker temporary files in memory (the container's root file system may be read-only).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No control socket (gunicornc): signals and the container's restarts manage the server.
control_socket_disable = True
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = "-"
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "generic": {"format": "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
                    "datefmt": "%Y-%m-%dT%H:%M:%S%z"},
        # uvicorn's access record: '<client> - "<method> <path> HTTP/<version>" <status>'
        "access": {"format": "%(asctime)s [%(process)d] access %(message)s", "datefmt": "%Y-%m-%dT%H:%M:%S%z"},
    },
    "handlers": {
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr"},
        "access_console": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access_console"], "propagate": False},
    },
    "root": {"level": loglevel.upper(), "handlers": ["error_console"]},
}
