from __future__ import annotations

import socket
from pathlib import Path

import pytest
from locust.argument_parser import LocustArgumentParser

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


@pytest.mark.parametrize("frame_ms", ["0", "-10", "25", "5", "81"])
def test_frame_size_must_be_a_positive_multiple_of_10(frame_ms: str) -> None:
    with pytest.raises(ConfigError, match=f"--frame-ms {frame_ms} is not a positive multiple"):
        _parse("--frame-ms", frame_ms)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--emulator-url", "http://x"], "not a ws:// or wss:// URL"),
        (["--eager-eot-threshold", "0.95"], "outside 0.3 .. 0.9"),
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
    with pytest.raises(ConfigError, match="--eot-timeout-ms 'soon' is not a number"):
        options.settings_from(namespace)
