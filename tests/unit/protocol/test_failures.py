"""The one failure taxonomy and its one advice table (voiceload.protocol.failures, issue 17)."""

from __future__ import annotations

import pytest

from voiceload import preflight
from voiceload.client.results import ErrorCategory
from voiceload.protocol import gateway
from voiceload.protocol.failures import (
    ADVICE,
    FailureCategory,
    UnknownFailureCategoryError,
    parse_category,
)
from voiceload.report import model

# sessions.csv / summary.json are a contract: these strings never change.
CONTRACT_VALUES = {
    "handshake_refused", "unauthorized", "gateway_not_found", "unknown_model", "rate_limited",
    "allocation_exhausted", "out_of_capacity", "bad_request", "connection_failed",
    "closed_by_server", "protocol_violation", "transcript_timeout", "harness_error",
}  # fmt: skip


def test_category_values_are_the_artifact_contract() -> None:
    assert {c.value for c in FailureCategory} == CONTRACT_VALUES


def test_there_is_one_enum() -> None:
    assert ErrorCategory is FailureCategory
    assert gateway.FailureCategory is FailureCategory


@pytest.mark.parametrize("category", list(FailureCategory))
def test_every_category_has_one_line_advice(category: FailureCategory) -> None:
    advice = ADVICE[category]
    assert advice.problem and advice.fix
    assert "\n" not in advice.problem + advice.fix


def test_an_unknown_value_is_an_error_not_a_fallback() -> None:
    with pytest.raises(UnknownFailureCategoryError, match=r"'nope' is not a failure category"):
        parse_category("nope")
    assert parse_category("rate_limited") is FailureCategory.RATE_LIMITED


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 429, 500, 503])
def test_preflight_and_the_upgrade_description_use_the_one_table(status: int) -> None:
    failure = gateway.classify_upgrade_failure(status, b"")
    advice = ADVICE[failure.category]
    assert failure.describe().endswith("; " + advice.fix)
    diagnosis, _ = preflight.diagnose_upgrade(status, b"", target_name="gateway")
    assert (diagnosis.problem, diagnosis.fix) == (advice.problem, advice.fix)


def test_report_explains_known_categories_from_the_table_and_names_unknown_ones() -> None:
    for category in FailureCategory:
        assert model._guidance(category.value) == (
            ADVICE[category].problem,
            ADVICE[category].fix,
        )
    cause, fix = model._guidance("unknown")
    assert "not a failure category" in cause and "'unknown'" in cause and fix == ""
