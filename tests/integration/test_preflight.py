"""`voiceload check` against the real emulator on loopback: every route passes, every fault is
named in the setup guide's words, every failing layer is the right one."""

from __future__ import annotations

import argparse
import io
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from voiceload import credentials, preflight
from voiceload.emulator.behaviour import parse_config
from voiceload.emulator.server import BackgroundEmulator, ServerOptions

ACCOUNT = "0123456789abcdef0123456789abcdef"
GATEWAY = "preflight-gw"
TOKEN = "preflight-token-7d1c0a9e5b3f4a2c"
DG_KEY = "preflight-dgkey-0b1c2d3e4f5a6b7c"
FAST = {"latency": {"flux": {"eot_delay": {"kind": "fixed", "ms": 50}},
                    "aura": {"first_byte": {"kind": "fixed", "ms": 20}}}}


@contextmanager
def running_emulator(config: Mapping[str, Any], token: str = TOKEN) -> Iterator[int]:
    """The emulator in-process (real OS thread, safe under gevent); yields its port."""
    options = ServerOptions(config=parse_config(dict(config)), token=token, account=ACCOUNT,
                            gateway=GATEWAY)
    with BackgroundEmulator(options) as emulator:
        yield int(emulator.url.rsplit(":", 1)[1])


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, loopback_only_dns: None) -> Iterator[None]:
    """The guide's variables set to test values; name lookups answer only for loopback, so
    no test here can reach a real service or the system resolver."""
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_GATEWAY_ID", GATEWAY)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("DEEPGRAM_API_KEY", DG_KEY)
    credentials.forget_secrets()
    yield
    credentials.forget_secrets()


def check(tmp_path: Path, utterance: Path, *argv: str) -> tuple[int, str]:
    """Run ``voiceload check`` in-process; returns (exit code, printed text)."""
    parser = argparse.ArgumentParser()
    preflight.configure_parser(parser)
    args = parser.parse_args(
        ["--env-file", str(tmp_path / "absent.env"), "--fixture", str(utterance),
         "--timeout-s", "10", *argv]
    )
    out = io.StringIO()
    code = preflight.main(args, out=out)
    return code, out.getvalue()


def lines_of(text: str) -> dict[str, str]:
    """step name -> its first printed line."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("✓", "✗", "-"):
            found[parts[1]] = line
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "auth_form"),
    [("gateway", "aig-header"), ("gateway", "aig-bearer"), ("gateway", "aig-subprotocol"),
     ("workers-ai", "bearer"), ("deepgram", "token")],
)
def test_every_route_passes_against_the_emulator(
    tmp_path: Path, utterance: Path, target: str, auth_form: str
) -> None:
    # The emulator takes one credential: the Deepgram key for the deepgram route.
    with running_emulator(FAST, token=DG_KEY if target == "deepgram" else TOKEN) as port:
        code, text = check(tmp_path, utterance, "--target", target, "--auth-form", auth_form,
                           "--base-url", f"ws://127.0.0.1:{port}")
    steps = lines_of(text)
    assert code == 0, text
    assert list(steps) == ["config", "dns", "tcp", "upgrade", "flux", "aura"]  # no TLS on ws://
    assert all(line.startswith("✓") for line in steps.values()), text
    assert " ms " in steps["dns"]
    assert "EndOfTurn" in steps["flux"] and "first audio frame" in steps["aura"]
    assert TOKEN not in text and DG_KEY not in text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("unauthorized", "Unauthorized (token invalid, lacking AI Gateway Run / Workers AI Read"),
        ("unknown_gateway", "AI Gateway not found"),
        ("unknown_model", "unknown model"),
        ("allocation_exhausted", "allocation used up (4006)"),
        ("rate_limited", "rate limited (429)"),
        ("bad_param", "WebSocket connection failed at the upgrade layer: bad request (400)"),
    ],
)
def test_each_injected_upgrade_fault_is_named_with_its_fix(
    tmp_path: Path, utterance: Path, fault: str, problem: str
) -> None:
    config = {**FAST, "faults": [{"kind": fault, "every": 1}]}
    with running_emulator(config) as port:
        code, text = check(tmp_path, utterance, "--target", "gateway",
                           "--base-url", f"ws://127.0.0.1:{port}")
    steps = lines_of(text)
    assert code == 1
    assert steps["upgrade"].startswith("✗")
    assert steps["flux"].startswith("- flux") and steps["aura"].startswith("- aura")
    diagnosis = text.split(steps["upgrade"], 1)[1].splitlines()[1].strip()
    assert diagnosis.startswith(problem), text
    assert ": check" in diagnosis or ": wait" in diagnosis or ": lower" in diagnosis


@pytest.mark.slow
def test_a_wrong_token_is_unauthorized_and_never_printed(
    tmp_path: Path, utterance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-token-5e6f7a8b9c0d1e2f3a4b"
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", wrong)
    with running_emulator(FAST) as port:
        code, text = check(tmp_path, utterance, "--target", "gateway",
                           "--base-url", f"ws://127.0.0.1:{port}")
    assert code == 1
    assert "✗ upgrade" in text and "Unauthorized" in text and "HTTP 401" in text
    assert wrong not in text and TOKEN not in text


@pytest.mark.slow
def test_a_wrong_gateway_id_is_gateway_not_found(
    tmp_path: Path, utterance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_GATEWAY_ID", "no-such-gateway")
    with running_emulator(FAST) as port:
        code, text = check(tmp_path, utterance, "--target", "gateway",
                           "--base-url", f"ws://127.0.0.1:{port}")
    assert code == 1 and "AI Gateway not found" in text and "CLOUDFLARE_GATEWAY_ID" in text


@pytest.mark.slow
def test_an_unknown_model_is_named(tmp_path: Path, utterance: Path) -> None:
    with running_emulator(FAST) as port:
        code, text = check(tmp_path, utterance, "--target", "workers-ai",
                           "--flux-model", "@cf/deepgram/no-such-model",
                           "--base-url", f"ws://127.0.0.1:{port}")
    assert code == 1 and "unknown model" in text and "5007" in text


@pytest.mark.slow
def test_model_parameters_reach_the_service_and_bad_ones_are_named(
    tmp_path: Path, utterance: Path
) -> None:
    with running_emulator(FAST) as port:
        base = f"ws://127.0.0.1:{port}"
        code, text = check(tmp_path, utterance, "--target", "gateway", "--base-url", base,
                           "--eot-threshold", "0.8", "--eager-eot-threshold", "0.5",
                           "--eot-timeout-ms", "3000", "--keyterm", "voiceload",
                           "--keyterm", "load test")
        assert code == 0, text
        assert "eot_threshold=0.8" in text and "keyterm=load%20test" in text
        code, text = check(tmp_path, utterance, "--target", "gateway", "--base-url", base,
                           "--eot-threshold", "0.95")  # outside the Workers AI range
    # refused by the route's rules before anything connects (the 400 answer of a bad
    # parameter is the bad_param fault's case above)
    steps = lines_of(text)
    assert code == 1 and steps["config"].startswith("✗") and steps["dns"].startswith("- dns")
    assert "--eot-threshold 0.95 is not accepted on Workers AI" in steps["config"]


@pytest.mark.slow
def test_a_stream_fault_fails_the_flux_step(tmp_path: Path, utterance: Path) -> None:
    config = {**FAST, "faults": [{"kind": "error_message", "every": 1, "service": "flux",
                                  "after_messages": 1}]}
    with running_emulator(config) as port:
        code, text = check(tmp_path, utterance, "--target", "gateway",
                           "--base-url", f"ws://127.0.0.1:{port}")
    steps = lines_of(text)
    assert code == 1
    assert steps["upgrade"].startswith("✓") and steps["flux"].startswith("✗")
    assert "flux step failed" in text


def test_a_missing_variable_is_named_before_any_connection(
    tmp_path: Path, utterance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDFLARE_GATEWAY_ID")
    code, text = check(tmp_path, utterance, "--target", "gateway",
                       "--base-url", "ws://127.0.0.1:9")  # were config to pass: still loopback
    steps = lines_of(text)
    assert code == 1
    assert steps["config"].startswith("✗") and "CLOUDFLARE_GATEWAY_ID is not set" in text
    assert all(steps[s].startswith("- ") for s in ("dns", "tcp", "upgrade", "flux", "aura"))


def test_an_unresolvable_host_fails_at_dns(tmp_path: Path, utterance: Path) -> None:
    # the test resolver (loopback_only_dns) refuses the name; no DNS query is made
    code, text = check(tmp_path, utterance, "--target", "gateway",
                       "--base-url", "ws://voiceload-check.invalid:80")
    steps = lines_of(text)
    assert code == 1 and steps["dns"].startswith("✗")
    assert "voiceload-check.invalid does not resolve" in text
    assert all(steps[s].startswith("- ") for s in ("tcp", "upgrade", "flux", "aura"))
    assert "WebSocket connection failed at the dns layer" in text


def test_a_closed_port_fails_at_tcp(tmp_path: Path, utterance: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on: bind, note it, close
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, text = check(tmp_path, utterance, "--target", "gateway",
                       "--base-url", f"ws://127.0.0.1:{port}")
    steps = lines_of(text)
    assert code == 1 and steps["dns"].startswith("✓") and steps["tcp"].startswith("✗")
    assert "WebSocket connection failed at the tcp layer" in text


def test_an_untrusted_certificate_fails_at_tls(
    tmp_path: Path, utterance: Path, self_signed_tls_port: int
) -> None:
    code, text = check(tmp_path, utterance, "--target", "gateway",
                       "--base-url", f"wss://127.0.0.1:{self_signed_tls_port}")
    steps = lines_of(text)
    assert code == 1
    assert steps["tcp"].startswith("✓") and steps["tls"].startswith("✗"), text
    assert "certificate not trusted" in text
    assert "WebSocket connection failed at the tls layer" in text


@pytest.mark.slow
def test_the_default_fixture_from_the_manifest_gets_its_end_of_turn() -> None:
    if not (Path(__file__).resolve().parents[2] / "fixtures/audio/manifest.toml").is_file():
        pytest.skip("no fixtures manifest in this checkout")
    fixture = preflight.default_fixture()
    assert fixture.is_file()
    parser = argparse.ArgumentParser()
    preflight.configure_parser(parser)
    with running_emulator(FAST) as port:
        args = parser.parse_args(["--target", "gateway", "--base-url", f"ws://127.0.0.1:{port}",
                                  "--env-file", "absent.env"])
        out = io.StringIO()
        code = preflight.main(args, out=out)
    assert code == 0, out.getvalue()
    assert "✓ flux" in out.getvalue()


def test_the_emulator_target_starts_the_bundled_emulator(tmp_path: Path, utterance: Path) -> None:
    """`voiceload check` (default target emulator, no --emulator-url) starts the emulator as
    `voiceload run` does, checks it, and stops it: nothing listens at 8787 beforehand."""
    config = tmp_path / "fast.toml"
    config.write_text('[latency.flux]\neot_delay = {kind = "fixed", ms = 50}\n')
    code, text = check(tmp_path, utterance, "--emulator-config", str(config))
    assert code == 0, text
    assert text.startswith("started the bundled emulator at ws://127.0.0.1:")
    assert "all checks passed" in text


def test_a_bad_emulator_config_is_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voiceload import cli

    bad = tmp_path / "bad.toml"
    bad.write_text("[latency.flux]\neot_delay = 3\n")
    assert cli.main(["check", "--emulator-config", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "latency.flux.eot_delay" in captured.err
    assert "started" not in captured.out
