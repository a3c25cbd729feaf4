"""Schemathesis against the app's own OpenAPI schema, in process (ASGI), signed in as a trader and as an
admin, on PostgreSQL: every operation gets schema-valid (positive) and schema-invalid (negative) requests.

Checks on every response: no 5xx, the status code is documented, the content type and the body match
the schema (errors included: the schema documents the error format for 4XX). Negative requests must
be rejected with a 4xx. Rate limits are off here (tested in test_ratelimit.py); everything else is the
real application.

The number of generated cases is printed in the "security checks" section of the summary.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tradefleet.api.deps import API_PREFIX
from tradefleet.models import Role

from security_figures import FIGURES

# Bounded so both roles together stay well under three minutes on two cores.
MAX_EXAMPLES = {GenerationMode.POSITIVE: int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20")),
                GenerationMode.NEGATIVE: int(os.environ.get("SCHEMATHESIS_MAX_NEGATIVE", "8"))}
CHECKS = {
    GenerationMode.POSITIVE: [not_a_server_error, status_code_conformance, content_type_conformance,
                              response_schema_conformance],
    GenerationMode.NEGATIVE: [not_a_server_error, status_code_conformance, content_type_conformance,
                              response_schema_conformance, negative_data_rejection],
}


@pytest.mark.timeout(400)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("role", [Role.trader, Role.admin], ids=["trader", "admin"])
def test_openapi_fuzz(role, db, app, make_user, auth_headers, settings_env, record_property):
    settings_env(RATE_LIMIT_ENABLED="false")
    user, _password = make_user(role=role, is_verified=True)
    headers = auth_headers(user)
    schema = schemathesis.openapi.from_asgi(f"{API_PREFIX}/openapi.json", app)

    cases = 0
    operations = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # The health probe answers a documented 503 when a part (here: the Celery worker) is down.
        excluded = [not_a_server_error] if operation.path == f"{API_PREFIX}/health" else []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            seen: list[str] = []

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES[mode], deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                nonlocal cases
                cases += 1
                try:
                    response = case.call_and_validate(
                        headers=headers, checks=[c for c in CHECKS[mode] if c not in excluded])
                    assert response.status_code < 500 or excluded, response.status_code
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected and reported below
                    text = f"{operation.label} [{mode.value}]: {str(exc).strip()[:1500]}"
                    if not seen:
                        seen.append(text)
                        failures.append(text)
                    raise

            try:
                run()
            except (Exception, BaseExceptionGroup):  # noqa: BLE001 - the failure text is in `failures`
                pass

    record_property("schemathesis_cases", cases)
    FIGURES[f"schemathesis ({role.value})"] = f"{cases} cases over {operations} operations, {len(failures)} failing"
    print(f"schemathesis as {role.value}: {cases} cases over {operations} operations")
    assert operations > 10
    assert not failures, "\n\n".join(failures)
