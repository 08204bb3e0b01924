"""Schemathesis against the app's own OpenAPI schema: no generated input may cause a 5xx.

Each operation is fuzzed with schema-valid (positive) and schema-violating
(negative) cases, at most ``MAX_EXAMPLES`` each, so the run stays within a CI budget.
The schema is loaded inside the test from an app built on the session bundle (the
lazy ``schemathesis.pytest.from_fixture`` loader does not run under pytest 9).
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from iomt_ids.artifacts import ModelBundle  # noqa: E402
from iomt_ids.serving import ServeSettings, create_app  # noqa: E402

KEY = "fuzz-key"
MAX_EXAMPLES = 50
OPERATIONS = [("POST", "/v1/predict"), ("GET", "/v1/model"), ("GET", "/healthz"), ("GET", "/metrics")]
CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (path == "/healthz" and mode is GenerationMode.NEGATIVE)  # takes no input: nothing to violate
]


@pytest.fixture(scope="module")
def api_schema(bundle: ModelBundle) -> Any:
    app = create_app(bundle, ServeSettings(api_key=KEY, max_rows=32, max_body_bytes=64 * 1024))
    # /openapi.json needs the key like every other route (see test_dashboard.py for the docs auth tests).
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"X-API-Key": KEY})


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_server_errors(api_schema: Any, method: str, path: str, mode: GenerationMode) -> None:
    operation = api_schema[path][method]
    statuses: list[int] = []
    # A schema-valid /v1/predict body can still be refused: the text/csv schema is "a string", and
    # finite values near the float32 limit can overflow the model's scaling (422, not 5xx).
    excluded = [schemathesis.checks.positive_data_acceptance] if path == "/v1/predict" else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    def run(case: Any) -> None:
        # With the key, so the fuzzer reaches validation and scoring rather than only the 401.
        response = case.call(headers={"X-API-Key": KEY})
        statuses.append(response.status_code)
        assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:300]}"
        case.validate_response(response, excluded_checks=excluded)

    run()
    assert statuses, "no case was generated"
    if mode is GenerationMode.POSITIVE:
        # The fuzzer must get through validation to the model, not only collect 4xx answers.
        assert statuses.count(200) > 0, collections.Counter(statuses)
