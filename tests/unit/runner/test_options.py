from __future__ import annotations

import socket
from pathlib import Path

import pytest
from locust.argument_parser import LocustArgumentParser

from voiceload.credentials import Credentials, Secret
from voiceload.errors import ConfigError
from voiceload.runner import options


def _parse(*argv: str) -> options.RunSettings:
    parser = LocustArgumentParser()
    options.add_arguments(parser)
    return options.settings_from(parser.parse_args(list(argv)))


def test_defaults_match_the_documented_ones() -> None:
    settings = _parse()
    assert settings == options.RunSettings()
    assert settings.frame_ms == 80


def test_flags_become_typed_settings() -> None:
    settings = _parse(
        "--fixtures", " a, b ,,", "--frame-ms", "40", "--eager-eot-threshold", "0.5",
        "--think-time-ms", "200", "--run-dir", "/tmp/x", "--aura-voice", "luna",
    )  # fmt: skip
    assert settings.fixtures == ("a", "b")
    assert settings.frame_ms == 40
    assert settings.eager_eot_threshold == 0.5
    assert settings.think_time_ms == 200
    assert settings.run_dir == Path("/tmp/x")
    assert settings.aura_voice == "luna"


def test_start_stagger_is_an_option() -> None:
    assert _parse().start_stagger_s == 1.0
    assert _parse("--start-stagger-s", "0").start_stagger_s == 0.0
    with pytest.raises(ConfigError, match="start-stagger-s -1 must not be negative"):
        _parse("--start-stagger-s", "-1")


def test_loop_lag_budget_is_an_option() -> None:
    assert _parse().loop_lag_budget_ms == 5.0
    assert _parse("--loop-lag-budget-ms", "8").loop_lag_budget_ms == 8.0
    with pytest.raises(ConfigError, match="loop-lag-budget-ms"):
        _parse("--loop-lag-budget-ms", "0")


@pytest.mark.parametrize("frame_ms", ["0", "-10", "25", "5", "81"])
def test_frame_size_must_be_a_positive_multiple_of_10(frame_ms: str) -> None:
    with pytest.raises(ConfigError, match=f"--frame-ms {frame_ms} is not a positive multiple"):
        _parse("--frame-ms", frame_ms)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--emulator-url", "http://x"], "not a ws:// or wss:// URL"),
        (["--eager-eot-threshold", "0.95"], "--eager-eot-threshold 0.95 .* expected 0.3 .. 0.9"),
        (["--report-interval-s", "0"], "--report-interval-s 0 must be greater than 0"),
        (["--think-time-ms", "-1"], "--think-time-ms -1 must be 0 or more"),
    ],
)
def test_bad_values_raise_one_line_config_errors(argv: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as exc:
        _parse(*argv)
    assert "\n" not in str(exc.value)


def test_environment_variables_reach_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICELOAD_FRAME_MS", "20")
    assert _parse().frame_ms == 20


def test_probe_accepts_a_listening_port_and_names_a_refusing_one() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert options.probe_tcp(f"ws://127.0.0.1:{port}/x") is None
    problem = options.probe_tcp(f"ws://127.0.0.1:{port}")  # closed now: refused
    assert problem is not None
    assert f"cannot connect to ws://127.0.0.1:{port} (connection refused)" in problem


def test_settings_resolve_the_emulator_target_with_model_params() -> None:
    from voiceload.credentials import Credentials

    settings = _parse("--emulator-url", "ws://127.0.0.1:9999", "--eot-timeout-ms", "3000")
    target = settings.resolve_target(Credentials())
    assert target.flux.url.startswith("ws://127.0.0.1:9999/")
    assert "eot_timeout_ms=3000" in target.flux.url
    assert not target.is_real


def test_unknown_target_is_one_line_config_error() -> None:
    from voiceload.credentials import Credentials

    with pytest.raises(ConfigError, match="unknown --target 'nowhere'"):
        _parse("--target", "nowhere").resolve_target(Credentials())


def test_text_from_the_web_ui_form_is_converted() -> None:
    parser = LocustArgumentParser()
    options.add_arguments(parser)
    namespace = parser.parse_args([])
    namespace.frame_ms = "40"  # the form sends text; empty fields mean "not set"
    namespace.eager_eot_threshold = ""
    namespace.eot_timeout_ms = "3000"
    namespace.think_time_ms = "250"
    settings = options.settings_from(namespace)
    assert (settings.frame_ms, settings.eager_eot_threshold) == (40, None)
    assert (settings.eot_timeout_ms, settings.think_time_ms) == (3000, 250)
    namespace.eot_timeout_ms = "soon"
    with pytest.raises(ConfigError, match=r"--eot-timeout-ms 'soon' is not a number"):
        options.settings_from(namespace)


# -- issue 7: every route and model option of `voiceload check` also drives a load run ----------


def _creds() -> Credentials:
    return Credentials(
        account_id="0123456789abcdef0123456789abcdef", gateway_id="gw",
        api_token=Secret("tok-abc123"), deepgram_api_key=Secret("dg-key-456"),
    )  # fmt: skip


def _query(url: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    return parse_qsl(urlsplit(url).query)


def test_flux_model_options_reach_the_url() -> None:
    settings = _parse("--target", "gateway", "--eot-threshold", "0.8", "--keyterm", "Acme",
                      "--keyterm", "customer service", "--sample-rate", "8000")  # fmt: skip
    target = settings.resolve_target(_creds())
    query = _query(target.flux.url)
    assert ("eot_threshold", "0.8") in query
    assert ("sample_rate", "8000") in query
    assert [v for k, v in query if k == "keyterm"] == ["Acme", "customer service"]
    # unset: not sent on the Workers AI routes, where the WebSocket does not document it
    assert ("encoding", "linear16") not in _query(target.aura.url)


def test_aura_encoding_reaches_the_aura_url_only() -> None:
    target = _parse("--target", "gateway", "--aura-encoding", "linear16").resolve_target(
        _creds()
    )
    assert ("encoding", "linear16") in _query(target.aura.url)
    assert ("sample_rate", "24000") in _query(target.aura.url)  # the rate the client times at
    assert ("encoding", "linear16") in _query(target.flux.url)  # Flux's own, always sent


def test_a_g711_aura_encoding_is_sent_with_its_rate_and_timed_at_it() -> None:
    settings = _parse("--target", "gateway", "--aura-encoding", "mulaw")
    aura_query = _query(settings.resolve_target(_creds()).aura.url)
    assert ("encoding", "mulaw") in aura_query and ("sample_rate", "8000") in aura_query


@pytest.mark.parametrize(
    ("form", "header", "value"),
    [
        ("aig-header", "cf-aig-authorization", "tok-abc123"),
        ("aig-bearer", "cf-aig-authorization", "Bearer tok-abc123"),
    ],
)
def test_auth_form_chooses_how_the_token_is_sent(form: str, header: str, value: str) -> None:
    target = _parse("--target", "gateway", "--auth-form", form).resolve_target(
        _creds()
    )
    assert (header, value) in target.flux.wire_headers()
    assert target.flux.wire_subprotocols() == []


def test_auth_form_as_a_subprotocol() -> None:
    target = _parse("--target", "gateway", "--auth-form", "aig-subprotocol").resolve_target(
        _creds()
    )
    assert target.flux.wire_subprotocols() == ["cf-aig-authorization.tok-abc123"]
    assert all(k != "cf-aig-authorization" for k, _ in target.flux.wire_headers())


def test_auth_form_the_target_cannot_use_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"--auth-form token does not work with target gateway"):
        _parse("--target", "gateway", "--auth-form", "token").resolve_target(
            _creds()
        )


def test_headers_and_aura_url_reach_a_url_target() -> None:
    settings = _parse("--target", "wss://voice.example.com/flux", "--aura-url",
                      "wss://voice.example.com/aura", "--header", "X-Api-Key: s3cret-1",
                      "--header", "X-Team: qa")  # fmt: skip
    target = settings.resolve_target(_creds())
    assert target.flux.url == "wss://voice.example.com/flux"
    assert target.aura.url == "wss://voice.example.com/aura"
    for endpoint in (target.flux, target.aura):
        assert endpoint.wire_headers() == [("X-Api-Key", "s3cret-1"), ("X-Team", "qa")]
    assert "s3cret-1" not in repr(settings) and "s3cret-1" not in repr(target)


def test_headers_reach_a_named_target_beside_its_auth() -> None:
    target = _parse("--target", "gateway", "--header", "X-Trace: 1").resolve_target(
        _creds()
    )
    assert ("X-Trace", "1") in target.flux.wire_headers()
    assert ("cf-aig-authorization", "tok-abc123") in target.flux.wire_headers()


def test_keyterms_from_the_web_ui_form_are_comma_separated() -> None:
    parser = LocustArgumentParser()
    options.add_arguments(parser)
    namespace = parser.parse_args([])
    namespace.keyterm = "Acme, Zed ,"
    namespace.auth_form = ""
    assert options.settings_from(namespace).keyterms == ("Acme", "Zed")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--eot-threshold", "0.4"], "--eot-threshold 0.4 is not accepted on Workers AI .*"
                                     "expected 0.5 .. 0.9"),
        (["--eot-threshold", "2"], "--eot-threshold 2 is not accepted"),
        (["--target", "deepgram", "--eot-threshold", "2"],
         "--eot-threshold 2 is not accepted on Deepgram .* expected 0.5 .. 1"),
        (["--eot-timeout-ms", "0"], "--eot-timeout-ms 0 .* an integer 500 .. 60000"),
        (["--sample-rate", "4000"], "--sample-rate 4000 .* expected one of 8000, 16000, 24000"),
        (["--sample-rate", "22050"], "--sample-rate 22050 .* expected one of 8000"),
        (["--aura-url", "ws://127.0.0.1:1/aura"], "--aura-url is for a ws:// or wss:// --target"),
    ],
)
def test_bad_route_options_are_one_line_config_errors(argv: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as exc:
        _parse(*argv)
    assert "\n" not in str(exc.value)


def test_each_route_accepts_its_own_range() -> None:
    # Deepgram documents eot_threshold up to 1.0 (ForceEndTurn-driven turns); Workers AI 0.9.
    assert _parse("--target", "deepgram", "--eot-threshold", "1.0").eot_threshold == 1.0
    with pytest.raises(ConfigError, match=r"--eot-threshold 1 is not accepted on Workers AI"):
        _parse("--target", "gateway", "--eot-threshold", "1.0")
    with pytest.raises(ConfigError, match=r"--eot-threshold 0.95 is not accepted on Workers AI"):
        _parse("--eot-threshold", "0.95")  # target emulator: the gateway route's rules
    assert _parse("--target", "ws://127.0.0.1:9/w", "--eot-threshold", "1.0").eot_threshold == 1


def test_an_unmeasurable_aura_encoding_from_the_web_ui_is_refused() -> None:
    parser = LocustArgumentParser()
    options.add_arguments(parser)
    namespace = parser.parse_args([])
    namespace.aura_encoding = "mp3"  # the form bypasses argparse's choices
    with pytest.raises(ConfigError, match=r"--aura-encoding mp3 cannot be measured"):
        options.settings_from(namespace)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "file not found"),
        ("[[slo]\nmetric =", "not valid TOML"),
        ('[[slo]]\nmetric = "flux.eot"\nstat = "p95"\nlimit_ms = "600ms"\n',
         "limit_ms: expected a number of milliseconds > 0"),
    ],
)
def test_an_slo_file_that_cannot_work_is_refused_with_the_options(
    tmp_path: Path, content: str | None, fragment: str
) -> None:
    path = tmp_path / "slo.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=fragment) as exc:
        _parse("--slo-file", str(path))
    assert str(exc.value).startswith(f"--slo-file {path}") and "\n" not in str(exc.value)


def test_a_good_slo_file_is_kept() -> None:
    shipped = Path(options.__file__).parents[1] / "data" / "slo.toml"
    assert _parse("--slo-file", str(shipped)).slo_file == shipped


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--users", "0"], "--users 0 must be at least 1"),
        (["--users", "-3"], "--users -3 must be at least 1"),
    ],
)
def test_fewer_than_one_user_is_refused_whatever_sets_it(argv: list[str], fragment: str) -> None:
    from voiceload.runner.options import locust_parser

    parsed = locust_parser().parse_args(["-f", "x", *argv])
    with pytest.raises(ConfigError, match=fragment):
        options.settings_from(parsed)


def test_users_from_a_scenario_or_the_environment_are_checked_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voiceload.runner.options import locust_parser

    monkeypatch.setenv("LOCUST_USERS", "0")
    with pytest.raises(ConfigError, match="--users 0 must be at least 1"):
        options.settings_from(locust_parser().parse_args(["-f", "x"]))


def test_a_worker_does_not_read_the_slo_file(tmp_path: Path) -> None:
    from voiceload.runner.options import locust_parser

    missing = tmp_path / "only-on-the-master.toml"
    parsed = locust_parser().parse_args(["-f", "x", "--worker", "--slo-file", str(missing)])
    assert options.settings_from(parsed).slo_file == missing
