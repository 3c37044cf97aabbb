"""Model parameter rules per route: the table, the query checks, the option checks."""

from __future__ import annotations

import pytest

from voiceload.errors import ConfigError
from voiceload.protocol.params import (
    AURA_RULES,
    FLUX_RULES,
    Provider,
    aura_format,
    aura_query_problem,
    check_options,
    flux_problems,
    flux_query_problem,
    provider_for_target,
)

RAW = [("encoding", "linear16"), ("sample_rate", "16000")]


def test_the_table_holds_the_documented_ranges_and_defaults() -> None:
    cf, dg = FLUX_RULES[Provider.WORKERS_AI], FLUX_RULES[Provider.DEEPGRAM]
    assert (cf.eot_threshold.low, cf.eot_threshold.high, cf.eot_threshold.default) == (
        0.5, 0.9, 0.7
    )
    assert (dg.eot_threshold.low, dg.eot_threshold.high) == (0.5, 1.0)
    for rules in (cf, dg):
        assert (rules.eager_eot_threshold.low, rules.eager_eot_threshold.high) == (0.3, 0.9)
        assert rules.eager_eot_threshold.default is None  # eager mode is off unless set
        assert (rules.eot_timeout_ms.low, rules.eot_timeout_ms.high) == (500, 60000)
        assert rules.eot_timeout_ms.default == 5000
        assert rules.sample_rates == (8000, 16000, 24000, 44100, 48000)
        assert "https://" in rules.source
    assert cf.encodings == ("linear16",) and cf.encoding_required
    assert "mulaw" in dg.encodings and not dg.encoding_required
    assert AURA_RULES[Provider.DEEPGRAM].encodings == ("linear16", "mulaw", "alaw")
    assert AURA_RULES[Provider.DEEPGRAM].sample_rates == (8000, 16000, 24000, 32000, 48000)
    assert "mp3" in AURA_RULES[Provider.WORKERS_AI].encodings


@pytest.mark.parametrize(
    ("target", "provider"),
    [
        ("emulator", Provider.WORKERS_AI),
        ("gateway", Provider.WORKERS_AI),
        ("workers-ai", Provider.WORKERS_AI),
        ("deepgram", Provider.DEEPGRAM),
        ("wss://example.invalid/agent", None),
    ],
)
def test_targets_map_to_their_provider(target: str, provider: Provider | None) -> None:
    assert provider_for_target(target) is provider


@pytest.mark.parametrize(
    ("pairs", "workers_ai", "deepgram"),
    [
        (RAW, None, None),
        ([*RAW, ("eot_threshold", "0.95")], "'0.95', expected 0.5 .. 0.9", None),
        ([*RAW, ("eot_threshold", "1.0")], "'1.0', expected 0.5 .. 0.9", None),
        ([*RAW, ("eot_threshold", "2")], "'2', expected 0.5 .. 0.9", "'2', expected 0.5 .. 1"),
        ([*RAW, ("eager_eot_threshold", "0.2")], "expected 0.3 .. 0.9", "expected 0.3 .. 0.9"),
        ([*RAW, ("eot_timeout_ms", "499")], "an integer 500 .. 60000", "an integer 500 .. 60000"),
        ([*RAW, ("eot_timeout_ms", "60000")], None, None),
        ([("encoding", "mulaw"), ("sample_rate", "8000")], "expected 'linear16'", None),
        ([("encoding", "opus"), ("sample_rate", "48000")], "expected 'linear16'", None),
        ([], "missing required parameter 'encoding'", None),  # Deepgram: containerized audio
        ([("encoding", "linear16")], "missing required parameter 'sample_rate'",
         "missing required parameter 'sample_rate'"),
        ([("encoding", "linear16"), ("sample_rate", "22050")], "one of 8000", "one of 8000"),
        ([*RAW, ("keyterm", "a"), ("tag", "x"), ("mip_opt_out", "true")], None, None),
    ],
)
def test_flux_query_rules_per_provider(
    pairs: list[tuple[str, str]], workers_ai: str | None, deepgram: str | None
) -> None:
    for provider, expected in ((Provider.WORKERS_AI, workers_ai), (Provider.DEEPGRAM, deepgram)):
        problem = flux_query_problem(provider, pairs)
        if expected is None:
            assert problem is None, (provider, problem)
        else:
            assert problem is not None and expected in problem, (provider, problem)


def test_a_url_target_accepts_what_either_provider_accepts() -> None:
    values = {"encoding": "linear16", "sample_rate": "16000", "eot_threshold": "1.0"}
    assert flux_problems(None, values) == []
    assert flux_problems(None, {**values, "eot_threshold": "2"})[0].name == "eot_threshold"
    assert aura_query_problem(Provider.WORKERS_AI, [("encoding", "mp3")]) is None


@pytest.mark.parametrize(
    ("pairs", "workers_ai", "deepgram"),
    [
        ([], None, None),
        ([("encoding", "linear16"), ("sample_rate", "24000")], None, None),
        ([("encoding", "mp3")], None, "expected one of 'linear16', 'mulaw', 'alaw'"),
        ([("sample_rate", "22050")], None, "one of 8000, 16000, 24000, 32000, 48000"),
        ([("container", "wav")], None, "'container': 'wav', expected none"),
        ([("encoding", "wav")], "expected one of 'linear16'", "expected one of 'linear16'"),
        ([("sample_rate", "0")], "a positive integer", "a positive integer"),
    ],
)
def test_aura_query_rules_per_provider(
    pairs: list[tuple[str, str]], workers_ai: str | None, deepgram: str | None
) -> None:
    for provider, expected in ((Provider.WORKERS_AI, workers_ai), (Provider.DEEPGRAM, deepgram)):
        problem = aura_query_problem(provider, pairs)
        if expected is None:
            assert problem is None, (provider, problem)
        else:
            assert problem is not None and expected in problem, (provider, problem)


def test_options_out_of_the_route_range_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        check_options(Provider.WORKERS_AI, sample_rate=16000, eot_threshold=2)
    message = str(info.value)
    assert message.startswith("--eot-threshold 2 is not accepted on Workers AI")
    assert "expected 0.5 .. 0.9" in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"--eot-threshold 0.95 .* expected 0.5 .. 0.9"):
        check_options(Provider.WORKERS_AI, sample_rate=16000, eot_threshold=0.95)
    check_options(Provider.DEEPGRAM, sample_rate=16000, eot_threshold=0.95)  # Deepgram: to 1.0
    with pytest.raises(ConfigError, match=r"--sample-rate 22050 .* one of 8000, 16000"):
        check_options(None, sample_rate=22050)
    with pytest.raises(ConfigError, match=r"--eot-timeout-ms 100 .* an integer 500 .. 60000"):
        check_options(Provider.DEEPGRAM, sample_rate=16000, eot_timeout_ms=100)
    with pytest.raises(ConfigError, match=r"--eager-eot-threshold 0.95"):
        check_options(Provider.WORKERS_AI, sample_rate=16000, eager_eot_threshold=0.95)
    with pytest.raises(ConfigError, match=r"--aura-sample-rate 22050 .* on Deepgram"):
        check_options(Provider.DEEPGRAM, sample_rate=16000, aura_sample_rate=22050)
    check_options(Provider.WORKERS_AI, sample_rate=8000, eot_threshold=0.5,
                  eager_eot_threshold=0.3, eot_timeout_ms=500, aura_sample_rate=22050)


def test_aura_format_is_asked_for_where_the_route_documents_it() -> None:
    assert aura_format(Provider.DEEPGRAM, None, None) == [
        ("encoding", "linear16"), ("sample_rate", "24000")
    ]
    assert aura_format(Provider.WORKERS_AI, None, None) == []  # undocumented there: not sent
    for provider in Provider:  # asked for: sent, with the encoding's own default rate
        assert aura_format(provider, "mulaw", None) == [
            ("encoding", "mulaw"), ("sample_rate", "8000")
        ]
        assert aura_format(provider, None, 16000) == [
            ("encoding", "linear16"), ("sample_rate", "16000")
        ]
