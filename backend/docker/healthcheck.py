"""Container health checks of the Tradefleet images (``HEALTHCHECK`` of backend/Dockerfile.web and
backend/Dockerfile.worker). Exit status 0 when healthy, 1 otherwise, with one line saying why.

``healthcheck.py web``
    ``GET http://127.0.0.1:8000/api/v1/health`` answers, with the database, the broker and the strategy
    sandbox ok. A missing worker heartbeat (``worker.ok`` false, HTTP 503) does not make the API
    unhealthy: the API still serves, and the workers have health checks of their own.
``healthcheck.py worker``
    In a worker container (``worker.sh QUEUES``): the worker answers Celery's ``ping`` by its node name
    within ``--timeout`` seconds. In the beat container (``worker.sh beat``): beat's schedule file was
    written within the last ``BEAT_STALE_S`` seconds (beat saves it every 3 minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROLE_FILE = Path("/tmp/tradefleet-role")
BEAT_STALE_S = 420


def web(url: str = "http://127.0.0.1:8000/api/v1/health") -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=8) as reply:
            body = json.load(reply)
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            return False, f"health answered {exc.code}"
        body = json.load(exc)
    except (OSError, ValueError) as exc:
        return False, f"health did not answer: {exc}"
    down = [part for part in ("database", "broker", "sandbox") if not (body.get(part) or {}).get("ok")]
    if down:
        return False, "down: " + ", ".join(down)
    return True, f"ok (status {body.get('status')})"


def beat() -> tuple[bool, str]:
    schedule = Path(os.environ.get("CELERY_BEAT_SCHEDULE", "/app/var/celerybeat-schedule"))
    files = [p for p in schedule.parent.glob(schedule.name + "*") if p.is_file()]
    if not files:
        return False, f"no schedule file {schedule}*"
    age = time.time() - max(p.stat().st_mtime for p in files)
    return age < BEAT_STALE_S, f"schedule written {age:.0f} s ago"


def worker() -> tuple[bool, str]:
    try:
        role = ROLE_FILE.read_text().split()
    except OSError:
        return False, "worker.sh has not started"
    if role[0] == "beat":
        return beat()
    name = role[1]
    done = subprocess.run(["celery", "-A", "tradefleet.jobs.app:celery_app", "inspect", "ping", "--destination", name,
                           "--timeout", "10", "--json"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or name not in done.stdout:
        return False, f"{name} did not answer ping: {(done.stdout + done.stderr).strip()[-300:]}"
    return True, f"{name} answered ping"


def main(argv: list[str]) -> int:
    checks = {"web": web, "worker": worker}
    if len(argv) != 2 or argv[1] not in checks:
        print("usage: healthcheck.py web|worker", file=sys.stderr)
        return 2
    ok, why = checks[argv[1]]()
    print(why)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
