"""sleep_until never returns early; secrets_of lists every form; wss:// verifies TLS."""

from __future__ import annotations

import ssl

from voiceload.client.connect import connect_options, secrets_of, sleep_until


class FakeClock:
    """A monotonic clock whose sleeps wake ``early_ns`` early on the first ``n_early`` calls."""

    def __init__(self, now_ns: int, early_ns: int, n_early: int) -> None:
        self.now = now_ns
        self.early_ns = early_ns
        self.n_early = n_early
        self.sleeps_ns: list[int] = []

    def now_ns(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        asked_ns = round(seconds * 1e9)
        self.sleeps_ns.append(asked_ns)
        early = self.early_ns if len(self.sleeps_ns) <= self.n_early else 0
        self.now += max(0, asked_ns - early)


def test_sleep_until_sleeps_again_after_an_early_wake() -> None:
    clock = FakeClock(now_ns=1_000_000, early_ns=700_000, n_early=2)
    sleep_until(21_000_000, clock.now_ns, clock.sleep)
    assert clock.sleeps_ns == [20_000_000, 700_000, 700_000]
    assert clock.now == 21_000_000


def test_sleep_until_past_due_does_not_sleep() -> None:
    clock = FakeClock(now_ns=5_000, early_ns=0, n_early=0)
    sleep_until(4_000, clock.now_ns, clock.sleep)
    sleep_until(5_000, clock.now_ns, clock.sleep)
    assert clock.sleeps_ns == []


def test_sleep_until_gives_up_on_a_timer_that_never_advances() -> None:
    clock = FakeClock(now_ns=0, early_ns=10**12, n_early=10**6)  # sleeps never move the clock
    sleep_until(1_000, clock.now_ns, clock.sleep)
    assert len(clock.sleeps_ns) == 100


def test_secrets_of_lists_values_and_tokens() -> None:
    secrets = secrets_of(
        {"cf-aig-authorization": "Bearer tok123456"}, ["cf-aig-authorization.tok987654"]
    )
    assert "tok123456" in secrets and "Bearer tok123456" in secrets
    assert "tok987654" in secrets and "cf-aig-authorization.tok987654" in secrets


def test_wss_connections_get_a_verifying_tls_context() -> None:
    options = connect_options("wss://gateway.example/v1/a/b", {"k": "v"}, ["p"], 5.0)
    context = options["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert options["additional_headers"] == {"k": "v"} and options["subprotocols"] == ["p"]
    assert options["proxy"] is None and options["compression"] is None


def test_ws_connections_get_no_tls_argument() -> None:
    options = connect_options("ws://127.0.0.1:8787/v2/listen", {}, [], 5.0)
    assert "ssl" not in options  # websockets refuses ssl= for ws://
    assert options["subprotocols"] is None and options["open_timeout"] == 5.0
