"""``voiceload check``: is the target reachable and usable, layer by layer, before any load?

Steps, in order (each prints ``✓``/``✗`` with its time; after a failure the rest are skipped):

1. ``config``   the credentials the target needs are set (names the missing variable);
2. ``dns``      the host name resolves;
3. ``tcp``      a TCP connection opens;
4. ``tls``      (``wss://`` only) the TLS handshake completes with certificate verification;
5. ``upgrade``  the WebSocket upgrade to the Flux endpoint answers 101;
6. ``flux``     one short utterance streamed in real time gets its ``EndOfTurn``;
7. ``aura``     one short ``Speak`` + ``Flush`` gets its first audio frame.

A failure is named in the setup guide's words (docs/PROTOCOLS.md §9; the project's one table,
:data:`voiceload.protocol.failures.ADVICE`) — AI Gateway not found, Unauthorized, WebSocket
connection failed (with the layer), unknown model, daily free allocation used up (4006), rate
limited — with the fix to try. Exit code 0 only when
every step passes.

The decisions (what a failure means, what to print) are pure functions of what was observed
(:func:`diagnose`, :func:`format_step`); :func:`run_checks` is the I/O wrapper that reads the
clock and opens sockets.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from voiceload.audio import frame_pcm, load_linear16
from voiceload.credentials import (
    DEFAULT_ENV_FILE,
    install_log_redaction,
    load_credentials,
    redact,
)
from voiceload.errors import ConfigError, FixtureError, RemoteProtocolError
from voiceload.fixtures import load_manifest
from voiceload.protocol.failures import ADVICE, WORKERS_AI_TOKEN_PERMISSION, FailureCategory
from voiceload.protocol.flux import FluxError, TurnEvent, TurnInfo, parse_server_message
from voiceload.protocol.gateway import AuthForm, classify_upgrade_failure
from voiceload.targets import NAMED_TARGETS, ModelParams, Target, resolve_target

STEPS: Final = ("config", "dns", "tcp", "tls", "upgrade", "flux", "aura")
DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_AURA_TEXT: Final = "Hello from voiceload."
# Silence streamed after the utterance while waiting for EndOfTurn (Flux ends a turn on silence).
TRAILING_SILENCE_S: Final = 8.0


@dataclass(frozen=True)
class Diagnosis:
    """A failure in the guide's words and the fix to try; both one line."""

    problem: str
    fix: str


@dataclass(frozen=True)
class StepResult:
    """One step's outcome. ``elapsed_ms`` is the step's own duration (0 when skipped)."""

    step: str
    ok: bool
    elapsed_ms: float
    detail: str = ""
    diagnosis: Diagnosis | None = None
    skipped: bool = False


# --- pure: what a failure means ----------------------------------------------------------------

#: What to try when a layer fails for a reason other than a refused upgrade.
LAYER_FIXES: Final[dict[str, str]] = {
    "dns": "check the host name and this machine's DNS (try: getent hosts <host>)",
    "tcp": "check the host and port are reachable from here (firewall, proxy, VPN)",
    "tls": "check the system CA certificates and that no proxy intercepts TLS "
    "(verification is never turned off)",
    "upgrade": "check the URL; try a plain HTTP request to it",
    "flux": "check --fixture is a short speech recording; try again, then look at the "
    "service's status page",
    "aura": "check --aura-model / --aura-voice; try again, then look at the service's status page",
}


#: The Unauthorized fix for targets that do not use the gateway token header.
_UNAUTHORIZED_FIX_BY_TARGET: Final[dict[str, str]] = {
    "workers-ai": "check CLOUDFLARE_API_TOKEN is valid and not expired and has the "
    f"{WORKERS_AI_TOKEN_PERMISSION} permission (it is sent as Authorization: Bearer)",
    "deepgram": "check DEEPGRAM_API_KEY is a valid Deepgram API key (sent as Authorization: "
    "Token)",
    "custom": "check the --header values your endpoint expects",
}


def diagnose_upgrade(status: int, body: bytes, target_name: str = "gateway"
                     ) -> tuple[Diagnosis, str]:
    """A refused upgrade in the guide's words, and a one-line detail (status, code, message).

    Classification is :func:`~voiceload.protocol.gateway.classify_upgrade_failure`'s; the
    Unauthorized fix names the credential ``target_name`` uses."""
    failure = classify_upgrade_failure(status, body)
    advice = ADVICE[failure.category]
    diagnosis = Diagnosis(advice.problem, advice.fix)
    if failure.category is FailureCategory.UNAUTHORIZED and target_name in (
        _UNAUTHORIZED_FIX_BY_TARGET
    ):
        diagnosis = Diagnosis("Unauthorized", _UNAUTHORIZED_FIX_BY_TARGET[target_name])
    code = f", code {failure.code}" if failure.code is not None else ""
    return diagnosis, f"HTTP {status}{code}: {failure.message}"


def diagnose_layer(layer: str, detail: str) -> Diagnosis:
    """A failure at ``layer`` (a :data:`STEPS` name) that is not a refused upgrade."""
    if layer in ("flux", "aura"):
        problem = f"{layer} step failed: {detail}"
    else:
        problem = f"WebSocket connection failed at the {layer} layer"
    return Diagnosis(problem, LAYER_FIXES.get(layer, "try again"))


def format_step(result: StepResult) -> str:
    """One line (two when failed: the fix): ``✓ dns      12.3 ms  gateway... -> 1.2.3.4``."""
    if result.skipped:
        return f"- {result.step:<8} skipped"
    mark = "✓" if result.ok else "✗"
    line = f"{mark} {result.step:<8} {result.elapsed_ms:8.1f} ms  {result.detail}".rstrip()
    if result.diagnosis is not None:
        line += f"\n    {result.diagnosis.problem}: {result.diagnosis.fix}"
    return redact(line)


# --- I/O: running the steps --------------------------------------------------------------------

Clock = Callable[[], int]


class _StepFailed(Exception):
    def __init__(self, detail: str, diagnosis: Diagnosis) -> None:
        super().__init__(detail)
        self.detail = detail
        self.diagnosis = diagnosis


def _fail(layer: str, detail: str) -> _StepFailed:
    return _StepFailed(detail, diagnose_layer(layer, detail))


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "wss" else 80)


def _ws_connect(url: str, kwargs: dict[str, Any], timeout_s: float, target_name: str
                ) -> ClientConnection:
    """Open a WebSocket; a refused upgrade becomes a classified :class:`_StepFailed`."""
    try:
        ws: ClientConnection = connect(
            url, open_timeout=timeout_s, close_timeout=2, compression=None, proxy=None,
            ping_interval=None, max_size=None, **kwargs,
        )
    except InvalidStatus as exc:
        diagnosis, detail = diagnose_upgrade(
            exc.response.status_code, bytes(exc.response.body or b""), target_name
        )
        raise _StepFailed(detail, diagnosis) from None
    except (InvalidHandshake, TimeoutError, OSError) as exc:
        raise _fail("upgrade", f"{exc.__class__.__name__}: {exc}") from None
    return ws


def _stream_flux(ws: ClientConnection, frames: Sequence[bytes], frame_ms: int, timeout_s: float,
                 clock: Clock) -> str:
    """Stream ``frames`` paced in real time, then silence, until ``EndOfTurn``; returns its
    transcript. Bounded: frames + :data:`TRAILING_SILENCE_S` + ``timeout_s``."""
    frame_ns = frame_ms * 1_000_000
    silence = bytes(len(frames[0])) if frames else b""
    n_silence = int(TRAILING_SILENCE_S * 1000 // frame_ms)
    plan = [*frames, *([silence] * n_silence)]
    t0 = clock()
    deadline = t0 + len(plan) * frame_ns + int(timeout_s * 1e9)
    sent = 0
    while clock() < deadline:
        now = clock()
        if sent < len(plan) and now >= t0 + (sent + 1) * frame_ns:
            ws.send(plan[sent])
            sent += 1
            continue
        next_due = t0 + (sent + 1) * frame_ns if sent < len(plan) else deadline
        wait_s = max(0.0, min(next_due, deadline) - now) / 1e9
        try:
            data = ws.recv(timeout=wait_s)
        except TimeoutError:
            continue
        except ConnectionClosed as exc:
            raise _fail("flux", f"closed by server before EndOfTurn ({exc})") from None
        try:
            msg = parse_server_message(data)
        except RemoteProtocolError as exc:
            raise _fail("flux", str(exc)) from None
        if isinstance(msg, FluxError):
            raise _fail("flux", f"Flux Error {msg.code}: {msg.description}")
        if isinstance(msg, TurnInfo) and msg.event is TurnEvent.END_OF_TURN:
            return msg.transcript
    raise _fail("flux", "no EndOfTurn before the deadline")


def _first_aura_audio(ws: ClientConnection, text: str, timeout_s: float, clock: Clock) -> int:
    """Send ``Speak`` + ``Flush``; return the size of the first binary (audio) frame."""
    ws.send(json.dumps({"type": "Speak", "text": text}))
    ws.send(json.dumps({"type": "Flush"}))
    deadline = clock() + int(timeout_s * 1e9)
    while (remaining_ns := deadline - clock()) > 0:
        try:
            data = ws.recv(timeout=remaining_ns / 1e9)
        except TimeoutError:
            break
        except ConnectionClosed as exc:
            raise _fail("aura", f"closed by server before any audio ({exc})") from None
        if isinstance(data, bytes):
            return len(data)
        if '"Warning"' in data or '"Error"' in data:
            raise _fail("aura", f"server said: {data[:200]}")
    raise _fail("aura", "no audio before the deadline")


def run_checks(
    target: Target,
    *,
    frames: Sequence[bytes],
    frame_ms: int,
    aura_text: str = DEFAULT_AURA_TEXT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    clock: Clock = time.monotonic_ns,
    on_step: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    """Run steps 2-7 against ``target`` (step 1, config, is :func:`resolve_target`'s job).

    Returns one :class:`StepResult` per step in :data:`STEPS` order minus ``config`` (``tls``
    is omitted for ``ws://``); after the first failure the rest are ``skipped``. ``on_step`` is
    called with each result as it is known (for live printing)."""
    flux_url = target.flux.url
    host, port = _host_port(flux_url)
    is_tls = urlsplit(flux_url).scheme == "wss"
    state: dict[str, object] = {}

    def dns() -> str:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise _fail("dns", f"{host} does not resolve ({exc.strerror})") from None
        state["address"] = infos[0][4]
        return f"{host} -> {infos[0][4][0]}"

    def tcp() -> str:
        address = state["address"]
        try:
            sock = socket.create_connection(address[:2], timeout=timeout_s)  # type: ignore[index]
        except OSError as exc:
            raise _fail("tcp", f"cannot connect to {host}:{port} ({exc})") from None
        state["sock"] = sock
        if not is_tls:
            sock.close()
        return f"{host}:{port} open"

    def tls() -> str:
        sock: socket.socket = state["sock"]  # type: ignore[assignment]
        context = target.flux.ssl_context()
        assert context is not None
        try:
            with context.wrap_socket(sock, server_hostname=host) as wrapped:
                version = wrapped.version()
        except ssl.SSLCertVerificationError as exc:
            raise _fail("tls", f"certificate not trusted ({exc.verify_message})") from None
        except (ssl.SSLError, OSError) as exc:
            raise _fail("tls", f"TLS handshake failed ({exc})") from None
        finally:
            sock.close()
        return f"{version}, certificate verified for {host}"

    def upgrade() -> str:
        ws = _ws_connect(flux_url, target.flux.connect_kwargs(), timeout_s, target.name)
        state["flux_ws"] = ws
        protocol = f", subprotocol {ws.subprotocol}" if ws.subprotocol else ""
        return f"101 Switching Protocols{protocol}"

    def flux() -> str:
        ws: ClientConnection = state.pop("flux_ws")  # type: ignore[assignment]
        with ws:
            transcript = _stream_flux(ws, frames, frame_ms, timeout_s, clock)
        return f"EndOfTurn: {transcript!r}"

    def aura() -> str:
        with _ws_connect(target.aura.url, target.aura.connect_kwargs(), timeout_s,
                         target.name) as ws:
            size = _first_aura_audio(ws, aura_text, timeout_s, clock)
        return f"first audio frame, {size} bytes"

    steps: list[tuple[str, Callable[[], str]]] = [("dns", dns), ("tcp", tcp)]
    if is_tls:
        steps.append(("tls", tls))
    steps += [("upgrade", upgrade), ("flux", flux), ("aura", aura)]

    results: list[StepResult] = []
    failed = False
    try:
        for name, step in steps:
            if failed:
                result = StepResult(name, ok=False, elapsed_ms=0.0, skipped=True)
            else:
                start = clock()
                try:
                    detail = step()
                    result = StepResult(name, ok=True, elapsed_ms=(clock() - start) / 1e6,
                                        detail=detail)
                except _StepFailed as exc:
                    failed = True
                    result = StepResult(name, ok=False, elapsed_ms=(clock() - start) / 1e6,
                                        detail=exc.detail, diagnosis=exc.diagnosis)
            results.append(result)
            if on_step is not None:
                on_step(result)
    finally:
        leftover = state.get("flux_ws")
        if isinstance(leftover, ClientConnection):
            leftover.close()
        sock = state.get("sock")
        if isinstance(sock, socket.socket):
            sock.close()
    return results


# --- the sub-command ---------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = "Preflight: check a target layer by layer before any load."
    parser.add_argument("--target", default="emulator",
                        help=f"{', '.join(NAMED_TARGETS)}, or a ws:// / wss:// URL")
    parser.add_argument("--emulator-url", default=None,
                        help="use an emulator that is already running here (target emulator;"
                             " default: start the bundled one, as voiceload run does)")
    parser.add_argument("--emulator-config", type=Path, default=None,
                        help="TOML config for the emulator this command starts")
    parser.add_argument("--base-url", default=None,
                        help="replace scheme and host of the target's routes (testing against "
                             "the emulator), e.g. ws://127.0.0.1:8787")
    parser.add_argument("--auth-form", choices=[f.value for f in AuthForm], default=None,
                        help="how the token is sent (default per target: aig-header for the "
                             "gateway, bearer for workers-ai, token for deepgram)")
    parser.add_argument("--header", action="append", default=[], metavar="'K: V'",
                        help="extra upgrade header (repeatable); its value is treated as a secret")
    parser.add_argument("--aura-url", default=None, help="Aura endpoint of a URL target")
    parser.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE,
                        help="credentials file (default .env.local; environment wins)")
    parser.add_argument("--fixture", type=Path, default=None,
                        help="short speech recording for the Flux step (default: the shortest "
                             "one-turn fixture in fixtures/audio/manifest.toml)")
    parser.add_argument("--frame-ms", type=int, default=80, help="Flux frame size")
    parser.add_argument("--flux-model", default="@cf/deepgram/flux")
    parser.add_argument("--eot-threshold", type=float, default=None)
    parser.add_argument("--eager-eot-threshold", type=float, default=None)
    parser.add_argument("--eot-timeout-ms", type=int, default=None)
    parser.add_argument("--keyterm", action="append", default=[], help="repeatable")
    parser.add_argument("--aura-model", default="@cf/deepgram/aura-1")
    parser.add_argument("--aura-voice", default=None)
    parser.add_argument("--aura-text", default=DEFAULT_AURA_TEXT)
    parser.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S,
                        help="per-step bound on waiting")


#: The Flux step's default utterance: a short recording of a real human voice (CMU ARCTIC).
DEFAULT_CHECK_FIXTURE: Final = "arctic_a0009"


def default_fixture() -> Path:
    """The Flux step's utterance: :data:`DEFAULT_CHECK_FIXTURE` from the fixtures manifest,
    else its shortest one-turn fixture.

    Raises :class:`~voiceload.errors.FixtureError` when there is no manifest or no such
    fixture (the fix: ``--fixture <short speech .wav>`` or ``make fixtures``)."""
    single = [f for f in load_manifest().fixtures if len(f.turns) == 1]
    if not single:
        raise FixtureError("no one-turn fixture in the manifest for the Flux step: pass "
                           "--fixture <short speech .wav> or run `make fixtures`")
    preferred = [f for f in single if f.name == DEFAULT_CHECK_FIXTURE]
    return (preferred or sorted(single, key=lambda f: f.duration_s))[0].path


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Check ``args.target``. For the emulator target without ``--emulator-url``, start the
    bundled emulator first, exactly as ``voiceload run`` does (its log goes to a temporary
    directory and is named when it fails to start), and stop it afterwards."""
    install_log_redaction()
    stream = out or sys.stdout
    if args.target != "emulator" or args.emulator_url is not None:
        return _check(args, stream, args.emulator_url)
    from voiceload.cli.run import Emulator  # the one `voiceload run` uses
    from voiceload.emulator.behaviour import load_config

    if args.emulator_config is not None:
        load_config(args.emulator_config)  # one line for a bad config, before starting it
    with (tempfile.TemporaryDirectory(prefix="voiceload-check-") as tmp,
          Emulator(Path(tmp) / "emulator.log", None, args.emulator_config) as emulator):
        print(f"started the bundled emulator at {emulator.url}", file=stream, flush=True)
        return _check(args, stream, emulator.url)


def _check(args: argparse.Namespace, stream: TextIO, emulator_url: str | None) -> int:

    def show(result: StepResult) -> None:
        print(format_step(result), file=stream, flush=True)

    creds = load_credentials(args.env_file)
    params = ModelParams(
        flux_model=args.flux_model, eot_threshold=args.eot_threshold,
        eager_eot_threshold=args.eager_eot_threshold, eot_timeout_ms=args.eot_timeout_ms,
        keyterms=tuple(args.keyterm), aura_model=args.aura_model, aura_voice=args.aura_voice,
    )
    start = time.monotonic_ns()
    try:
        target = resolve_target(
            args.target, credentials=creds, params=params, emulator_url=emulator_url,
            base_url=args.base_url, headers=args.header,
            auth_form=AuthForm(args.auth_form) if args.auth_form else None,
            aura_url=args.aura_url,
        )
    except ConfigError as exc:
        elapsed_ms = (time.monotonic_ns() - start) / 1e6
        show(StepResult("config", ok=False, elapsed_ms=elapsed_ms, detail=str(exc),
                        diagnosis=Diagnosis("configuration incomplete",
                                            "set it as the setup guide shows, then run again")))
        for name in STEPS[1:]:
            show(StepResult(name, ok=False, elapsed_ms=0.0, skipped=True))
        return 1
    fixture = args.fixture or default_fixture()
    frames = frame_pcm(load_linear16(fixture, params.sample_rate), params.sample_rate,
                       args.frame_ms)
    where = ", ".join(sorted({creds.sources.get(v, "") for v in target.required_vars} - {""}))
    show(StepResult("config", ok=True, elapsed_ms=(time.monotonic_ns() - start) / 1e6,
                    detail=f"target {target.name} {target.describe()['url']}"
                    + (f" (credentials from {where})" if where else "")))
    results = run_checks(target, frames=frames, frame_ms=args.frame_ms,
                         aura_text=args.aura_text, timeout_s=args.timeout_s, on_step=show)
    ok = all(r.ok for r in results)
    print("all checks passed" if ok else "check failed", file=stream)
    return 0 if ok else 1
