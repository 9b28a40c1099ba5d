"""Every operation of the published OpenAPI, driven by schemathesis, never answers 5xx, and every
JSON answer names its members in camelCase (a snake_case member only beside its camelCase twin,
for one release: docs/api.md, "Names").

The app runs on a seeded database, SQLite and PostgreSQL, with an admin token for all
municipalities (so requests reach the handlers, not only the auth check). Examples per operation
are bounded (positive and negative generation) so the whole test runs in well under a minute
per database. Every failing operation is reported, not only the first."""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from cloud.api import shapes
from cloud.app import create_app
from cloud.auth import create_user
from cloud.registry.seed import seed
from cloud.settings import CloudSettings

# Per operation and generation mode: ~30 s of CPU for the whole API in CI on SQLite. PostgreSQL
# runs fewer (~20 s more): the handlers are the same code, what differs is the database's
# reaction to hostile values (NUL bytes, overflowing numbers, odd text). A deeper hunt:
# AQUACIS_SCHEMATHESIS_EXAMPLES=200 pytest tests/cloud/test_openapi_schemathesis.py
EXAMPLES = int(os.environ.get("AQUACIS_SCHEMATHESIS_EXAMPLES", "10"))
EXAMPLES_PG = int(os.environ.get("AQUACIS_SCHEMATHESIS_EXAMPLES", "4"))


def _snake_without_twin(value: Any, path: str = "$") -> list[str]:
    """Members of a JSON document that are snake_case without their camelCase twin beside them
    (skipping what keeps its own names: shapes.OPAQUE, shapes.NO_TWIN), and camelCase times that
    are numbers rather than ISO 8601."""
    found: list[str] = []
    if isinstance(value, list):
        for i, v in enumerate(value):
            found += _snake_without_twin(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, v in value.items():
            if key in shapes.OPAQUE:
                continue
            if "_" in key and key.islower() and key not in shapes.NO_TWIN and shapes.camel(key) not in value:
                found.append(f"{path}.{key}")
            if key.endswith("At") and isinstance(v, int) and not isinstance(v, bool):  # times are ISO 8601
                found.append(f"{path}.{key} (epoch ms)")
            found += _snake_without_twin(v, f"{path}.{key}")
    return found


def camel_case_members(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis check: a JSON answer (not problem details: their members are RFC 9457's)."""
    if response.headers.get("content-type", [""])[0].startswith("application/json") and response.content:
        missing = _snake_without_twin(response.json())
        assert not missing, f"snake_case members without a camelCase twin: {missing[:5]}"
    return None


def _check_operation(operation: Any, mode: GenerationMode, headers: dict[str, str], examples: int) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error, camel_case_members])

    run()


def test_no_operation_answers_5xx(db_url: str) -> None:
    # Billing runs the fuzzer starts are not worked in this process (billing_inprocess_workers=0):
    # their threads would hold SQLite's write lock while later operations run (a 503 "retry"
    # that depends on timing).
    app = create_app(CloudSettings(db_url=db_url, log_json=False, log_level="critical",
                                   vee_interval_s=0, workorder_interval_s=0, sync_maintenance_interval_s=0,
                                   billing_inprocess_workers=0))
    engine = app.state.engine
    try:
        seed(engine, "EXP-01", 2, 6)
        with engine.begin() as conn:
            cred = create_user(conn, name="schemathesis admin", role="admin", municipality="*")
        headers = {"Authorization": f"Bearer {cred['token']}"}
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        failures: list[str] = []
        count = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            count += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _check_operation(operation, mode, headers, EXAMPLES_PG if db_url.startswith("postgresql") else EXAMPLES)
                except Unsatisfiable:
                    # No input to make invalid (an operation without parameters or body).
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except (AssertionError, BaseExceptionGroup) as exc:  # every failing operation is named
                    failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")
        assert count > 50, f"only {count} operations in the OpenAPI"
        assert not failures, f"{len(failures)} failing:\n\n" + "\n\n".join(failures)
    finally:
        engine.dispose()
