"""schemathesis 4, its CLI with ``--checks all``, against a real uvicorn server on PostgreSQL, signed in as
a trader and as an admin (``backend/schemathesis.toml``: positive and negative generation, NUL bytes, any
Unicode, integers past every documented bound).

Every check runs: no 5xx, documented status codes, content types, headers and bodies matching the schema
(errors included: the schema documents the error format for 4XX), schema-invalid requests rejected,
405 with a correct ``Allow`` for undocumented methods, authentication enforced. Rate limits are off here
(tested in test_ratelimit_lockout.py); everything else is the real application.

The figures (cases run, failures, seconds) are printed in the "security checks" section of the summary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tradefleet.api.deps import API_PREFIX
from tradefleet.models import Role

from uvicorn_server import serve

CONFIG = Path(__file__).resolve().parents[2] / "schemathesis.toml"
CLI = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES")  # overrides the config's max-examples


def _figure(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    return int(match.group(1)) if match else 0


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("role", [Role.trader, Role.admin], ids=["trader", "admin"])
def test_schemathesis_cli_all_checks(role, db, app, make_user, auth_headers, settings_env, tmp_path, figures):
    settings_env(RATE_LIMIT_ENABLED="false")
    user, _password = make_user(role=role, is_verified=True)
    headers = auth_headers(user)
    with serve(app) as port:
        base = f"http://127.0.0.1:{port}"
        schema = httpx.get(f"{base}{API_PREFIX}/openapi.json", headers=headers)
        assert schema.status_code == 200, schema.text
        schema_file = tmp_path / "openapi.json"
        schema_file.write_text(json.dumps(schema.json()))
        command = [str(CLI), "--config-file", str(CONFIG), "run", str(schema_file), "--url", base,
                   "--checks", "all", "--exclude-path", f"{API_PREFIX}/health", "-H", f"Authorization: {headers['Authorization']}",
                   "--no-color"]
        if MAX_EXAMPLES:
            command += ["--max-examples", MAX_EXAMPLES]
        # The probe is left out of the fuzzing: no Celery worker runs here, so it answers its documented
        # 503 (which the server-error check would count); it takes no input.
        health = httpx.get(f"{base}{API_PREFIX}/health")
        assert health.status_code == 503 and health.json()["worker"]["ok"] is False
        started = time.monotonic()
        # Run in tmp_path: the CLI keeps a cache directory (.schemathesis/) in its working directory.
        result = subprocess.run(command, capture_output=True, text=True, timeout=540, cwd=tmp_path,
                                env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
        seconds = time.monotonic() - started
    out = result.stdout + result.stderr
    cases = _figure(r"Test cases:\s+(\d+) generated", out)
    failures = _figure(r"(\d+) unique failures?", out) or _figure(r"Failures:\s+(\d+)", out)
    operations = _figure(r"Selected:\s+(\d+)/", out)
    figures.add("security checks", f"schemathesis CLI --checks all ({role.value})",
                f"{cases} cases over {operations} operations, {failures} failures, {seconds:.0f} s")
    print(out[-6000:])
    assert result.returncode == 0, out[-20000:]
    assert operations > 10 and cases > operations
