"""voiceload's own Locust command-line options, and the checks they get before any load starts.

:func:`add_arguments` is called from the ``init_command_line_parser`` event, so every option works
as a flag, in ``locust.conf`` or a scenario file (``frame-ms = 40``), as an environment variable
(``VOICELOAD_FRAME_MS``) and in the web UI. :func:`settings_from` turns Locust's parsed options
into one frozen :class:`RunSettings`, raising :class:`~voiceload.errors.ConfigError` with one
actionable line when an option cannot work. :func:`probe_tcp` checks, once, that the target
accepts connections at all.
"""

from __future__ import annotations

import argparse
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from voiceload.credentials import Credentials
from voiceload.errors import ConfigError
from voiceload.protocol.aura import SAMPLE_RATE_BY_ENCODING
from voiceload.protocol.gateway import AuthForm
from voiceload.protocol.params import check_options, provider_for_target
from voiceload.slo import load_slos
from voiceload.targets import NAMED_TARGETS, ModelParams, Target, resolve_target

DEFAULT_EMULATOR_URL = "ws://127.0.0.1:8787"
DEFAULT_FLUX_MODEL = "@cf/deepgram/flux"
DEFAULT_AURA_MODEL = "@cf/deepgram/aura-1"
DEFAULT_SAMPLE_RATE = 16_000
#: Aura output encodings voiceload can measure (raw samples it times exactly; see
#: voiceload.client.aura_format). Each is sent with its sample rate.
AURA_ENCODINGS = tuple(SAMPLE_RATE_BY_ENCODING)


@dataclass(frozen=True)
class RunSettings:
    """Every voiceload option of one run, checked. Times carry their unit in the name."""

    target: str = "emulator"
    emulator_url: str = DEFAULT_EMULATOR_URL
    auth_form: AuthForm | None = None  # None: the target's default (targets.AUTH_FORMS)
    headers: tuple[str, ...] = field(default=(), repr=False)  # 'K: V'; values are secrets
    aura_url: str | None = None  # Aura endpoint of a ws:// target (default: the same URL)
    fixtures: tuple[str, ...] = ()  # empty: every fixture suitable for the user type
    frame_ms: int = 80
    flux_model: str = DEFAULT_FLUX_MODEL
    sample_rate: int = DEFAULT_SAMPLE_RATE  # Flux input, Hz: the fixtures are resampled to it
    eot_threshold: float | None = None
    eager_eot_threshold: float | None = None
    eot_timeout_ms: int | None = None
    keyterms: tuple[str, ...] = ()
    think_time_ms: int = 0
    aura_model: str = DEFAULT_AURA_MODEL
    aura_voice: str | None = None
    aura_encoding: str | None = None  # None: not sent (the service's default, linear16)
    run_dir: Path | None = None  # None: reports/<run-id>
    reports_dir: Path = Path("reports")
    slo_file: Path | None = None
    report_interval_s: float = 2.0
    send_lag_budget_ms: float = 5.0
    loop_lag_budget_ms: float = 5.0
    start_stagger_s: float = 1.0  # each user's first session starts within this of its spawn
    cpu_budget_percent: float = 75.0
    fail_fast_sessions: int = 20
    base_url: str | None = None  # replaces scheme and host of a real route (loopback tests)
    yes: bool = False  # accept the spend estimate of a paid target
    emulator_config: Path | None = None  # recorded in run.json (voiceload run starts it)

    def model_params(self) -> ModelParams:
        """The model parameters the endpoints carry (query parameters on every route)."""
        return ModelParams(
            flux_model=self.flux_model,
            sample_rate=self.sample_rate,
            eot_threshold=self.eot_threshold,
            eager_eot_threshold=self.eager_eot_threshold,
            eot_timeout_ms=self.eot_timeout_ms,
            keyterms=self.keyterms,
            aura_model=self.aura_model,
            aura_voice=self.aura_voice,
            aura_encoding=self.aura_encoding,
        )

    def resolve_target(self, credentials: Credentials) -> Target:
        """The endpoints to load (:func:`voiceload.targets.resolve_target`); may raise
        :class:`ConfigError` naming a missing credential, a bad header or auth form."""
        return resolve_target(
            self.target,
            credentials=credentials,
            params=self.model_params(),
            emulator_url=self.emulator_url,
            base_url=self.base_url,
            auth_form=self.auth_form,
            headers=self.headers,
            aura_url=self.aura_url,
        )


def add_arguments(parser: Any) -> None:
    """Add voiceload's options to Locust's (configargparse) parser."""

    def add(flag: str, **kwargs: Any) -> None:
        # Locust's own add_argument (not an argument group's) shows the option in the web UI.
        env_var = "VOICELOAD_" + flag.lstrip("-").replace("-", "_").upper()
        parser.add_argument(flag, env_var=env_var, **kwargs)

    add("--target", default="emulator",
        help=f"where load goes: {', '.join(NAMED_TARGETS)} or a ws(s):// URL")
    add("--emulator-url", default=DEFAULT_EMULATOR_URL,
        help="ws:// URL of a running `voiceload emulate` (target emulator)")
    add("--auth-form", default="", choices=["", *(f.value for f in AuthForm)],
        help="how the token is sent (default per target: aig-header for the gateway and the"
             " emulator, bearer for workers-ai, token for deepgram)")
    add("--header", action="append", default=None, metavar="'K: V'", include_in_web_ui=False,
        help="extra upgrade header for every connection (repeatable); its value is a secret")
    add("--aura-url", default="", help="Aura endpoint of a ws:// --target (default: the same URL)")
    add("--fixtures", default="",
        help="comma-separated fixture names from fixtures/audio/manifest.toml (default: all)")
    add("--frame-ms", type=int, default=80,
        help="Flux audio frame size in ms: a positive multiple of 10 (80 is Deepgram's advice)")
    add("--flux-model", default=DEFAULT_FLUX_MODEL, help="Flux model id")
    add("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE,
        help="Flux input sample rate in Hz (fixtures are resampled to it): 8000, 16000,"
             " 24000, 44100 or 48000")
    add("--eot-threshold", type=float, default=None,
        help="Flux eot_threshold: 0.5 .. 0.9 on Workers AI routes, 0.5 .. 1.0 on Deepgram"
             " (service default 0.7 when unset)")
    add("--eager-eot-threshold", type=float, default=None,
        help="turn on eager end-of-turn with this threshold (0.3 .. 0.9)")
    add("--eot-timeout-ms", type=int, default=None,
        help="Flux eot_timeout_ms, 500 .. 60000 (service default 5000 when unset)")
    add("--keyterm", action="append", default=None,
        help="Flux keyterm to boost (repeatable; in the web UI: comma-separated)")
    add("--think-time-ms", type=int, default=0,
        help="voice agent: pause standing in for the language model before each reply")
    add("--aura-model", default=DEFAULT_AURA_MODEL, help="Aura model id")
    add("--aura-voice", default=None, help="Aura voice (service default when unset)")
    add("--aura-encoding", default="", choices=["", *AURA_ENCODINGS],
        help="Aura output encoding sent as encoding= with its sample_rate= (unset: not sent"
             " on Workers AI routes, linear16 on deepgram)")
    add("--run-dir", default="",
        help="where this run's artifacts go (default: <reports-dir>/<run-id>)")
    add("--reports-dir", default="reports", help="parent of run directories and `latest`")
    add("--slo-file", default="", help="SLO file for the report step")
    add("--report-interval-s", type=float, default=2.0,
        help="histogram interval: how often samples are drained into the .hlog files")
    add("--send-lag-budget-ms", type=float, default=5.0,
        help="validity: steady flux.send_lag p99 budget")
    add("--loop-lag-budget-ms", type=float, default=5.0,
        help="validity: steady harness.loop_lag p99 budget (the generator's event-loop lag)")
    add("--start-stagger-s", type=float, default=1.0,
        help="each user starts its first session a random 0 .. this many seconds after Locust"
             " spawns it (Locust spawns a second's users at once); steady starts this long"
             " after spawning completes (0: no stagger)")
    add("--cpu-budget-percent", type=float, default=75.0,
        help="validity: worker CPU budget (sustained for 3 s)")
    add("--base-url", default="",
        help="replace scheme and host of the gateway/workers-ai/deepgram routes (testing)")
    add("--yes", action="store_true", default=False,
        help="accept the printed spend estimate of a paid target (or VOICELOAD_CONFIRM=1)")
    add("--emulator-config", default="",
        help="the emulator's TOML config, recorded in run.json (voiceload run passes it)")
    add("--fail-fast-sessions", type=int, default=20,
        help="stop when this many first sessions all fail the same way (0: never)")  # fmt: skip


def locust_parser() -> Any:
    """Locust's full option parser plus voiceload's, reading no config file and firing no
    global event (for in-process runs and tests: ``locust_parser().parse_args([...])``)."""
    from voiceload.runner import locust_compat  # imports Locust (and gevent's patches) only now

    parser = locust_compat.empty_locust_parser()
    add_arguments(parser)
    return parser


def check_frame_ms(frame_ms: int) -> int:
    """``frame_ms`` if it is a positive multiple of 10, else :class:`ConfigError`."""
    if frame_ms <= 0 or frame_ms % 10:
        raise ConfigError(
            f"--frame-ms {frame_ms} is not a positive multiple of 10 ms; try 20, 40 or 80"
        )
    return frame_ms


def _number(name: str, value: object, kind: type[int] | type[float]) -> float | None:
    """``value`` as ``kind``; ``None`` for ``None`` or ``""``. The web UI's form sends every
    option as text, so "40" and "" must work as well as 40 and None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return kind(str(value))
    except (TypeError, ValueError):
        raise ConfigError(f"--{name} {value!r} is not a number") from None


def _required(name: str, value: object, kind: type[int] | type[float]) -> float:
    number = _number(name, value, kind)
    if number is None:
        raise ConfigError(f"--{name} needs a value")
    return number


def _positive(name: str, value: object) -> float:
    number = _required(name, value, float)
    if number <= 0:
        raise ConfigError(f"--{name} {number:g} must be greater than 0")
    return number


def _not_negative(name: str, value: object) -> float:
    number = _required(name, value, float)
    if number < 0:
        raise ConfigError(f"--{name} {number:g} must not be negative")
    return number


def _texts(value: object, *, comma_separated: bool) -> tuple[str, ...]:
    """A repeatable option's values: ``None`` -> ``()``, a list (flags, config file) as given,
    one text (the web UI's form, an environment variable) as one value or, when
    ``comma_separated``, split at commas. Blank values are dropped."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        texts = [str(item) for item in value]
    else:
        texts = str(value).split(",") if comma_separated else [str(value)]
    return tuple(text.strip() for text in texts if text.strip())


def _auth_form(value: object) -> AuthForm | None:
    if value is None or not str(value).strip():
        return None
    try:
        return AuthForm(str(value).strip())
    except ValueError:
        raise ConfigError(
            f"--auth-form {value!r} is not one of {', '.join(f.value for f in AuthForm)}"
        ) from None


def settings_from(options: argparse.Namespace) -> RunSettings:
    """Check Locust's parsed options and return the voiceload part of them.

    Raises :class:`ConfigError` (one line, naming the flag) for a frame size that is not a
    positive multiple of 10 ms, a bad URL, a non-number, a threshold, timeout or sample rate the
    target's route does not accept (:func:`voiceload.protocol.params.check_options`), an
    unknown auth form or Aura encoding, ``--aura-url`` without a ws:// target, a non-positive
    budget, fewer than 1 user or a spawn rate of 0 or less (:func:`check_load_shape`), or an
    SLO file that is missing, not TOML or not an SLO file (:func:`voiceload.slo.load_slos`).
    The target itself (credentials, headers) is checked by
    :meth:`RunSettings.resolve_target`, fixture names by the session factory.
    """
    url = str(options.emulator_url)
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"--emulator-url {url!r} is not a ws:// or wss:// URL with a host")
    threshold = _number("eager-eot-threshold", options.eager_eot_threshold, float)
    eot_threshold = _number("eot-threshold", options.eot_threshold, float)
    sample_rate = int(_required("sample-rate", options.sample_rate, int))
    aura_encoding = str(options.aura_encoding or "").strip() or None
    if aura_encoding is not None and aura_encoding not in AURA_ENCODINGS:
        raise ConfigError(
            f"--aura-encoding {aura_encoding} cannot be measured: voiceload times Aura audio as"
            f" {' or '.join(AURA_ENCODINGS)} samples (leave it unset for the default)"
        )
    target = str(options.target)
    aura_url = str(options.aura_url or "").strip() or None
    if aura_url is not None and not target.startswith(("ws://", "wss://")):
        raise ConfigError(
            f"--aura-url is for a ws:// or wss:// --target; target {target} has its own Aura route"
        )
    eot_timeout_ms = _number("eot-timeout-ms", options.eot_timeout_ms, int)
    # Ranges and allowed values per route live in one table (protocol.params).
    check_options(
        provider_for_target(target), sample_rate=sample_rate, eot_threshold=eot_threshold,
        eager_eot_threshold=threshold,
        eot_timeout_ms=None if eot_timeout_ms is None else int(eot_timeout_ms),
        aura_encoding=aura_encoding,
    )
    think_time_ms = int(_required("think-time-ms", options.think_time_ms, int))
    if think_time_ms < 0:
        raise ConfigError(f"--think-time-ms {think_time_ms} must be 0 or more")
    fixtures = tuple(name.strip() for name in str(options.fixtures).split(",") if name.strip())
    check_load_shape(options)

    def path(value: object) -> Path | None:
        return Path(str(value)) if value else None

    slo_file = path(options.slo_file)
    # A missing, unparsable or ill-typed SLO file fails now, not at the report after the load;
    # a worker (--worker, maybe on another machine) never reads it: the master reports.
    if slo_file is not None and getattr(options, "worker", False) is not True:
        try:
            load_slos(slo_file)
        except ConfigError as exc:
            raise ConfigError(f"--slo-file {exc}") from None

    return RunSettings(
        target=target,
        emulator_url=url,
        auth_form=_auth_form(options.auth_form),
        headers=_texts(options.header, comma_separated=False),
        aura_url=aura_url,
        fixtures=fixtures,
        frame_ms=check_frame_ms(int(_required("frame-ms", options.frame_ms, int))),
        flux_model=str(options.flux_model),
        sample_rate=sample_rate,
        eot_threshold=eot_threshold,
        eager_eot_threshold=threshold,
        eot_timeout_ms=None if eot_timeout_ms is None else int(eot_timeout_ms),
        keyterms=_texts(options.keyterm, comma_separated=True),
        think_time_ms=think_time_ms,
        aura_model=str(options.aura_model),
        aura_voice=str(options.aura_voice) if options.aura_voice else None,
        aura_encoding=aura_encoding,
        run_dir=path(options.run_dir),
        reports_dir=Path(str(options.reports_dir)),
        slo_file=slo_file,
        report_interval_s=_positive("report-interval-s", options.report_interval_s),
        send_lag_budget_ms=_positive("send-lag-budget-ms", options.send_lag_budget_ms),
        loop_lag_budget_ms=_positive(
            "loop-lag-budget-ms", getattr(options, "loop_lag_budget_ms", 5.0)
        ),
        start_stagger_s=_not_negative(
            "start-stagger-s", getattr(options, "start_stagger_s", 1.0)
        ),
        cpu_budget_percent=_positive("cpu-budget-percent", options.cpu_budget_percent),
        fail_fast_sessions=max(0, int(_required("fail-fast-sessions",
                                                options.fail_fast_sessions, int))),
        base_url=str(options.base_url) if options.base_url else None,
        yes=options.yes is True or str(options.yes).lower() == "true",
        emulator_config=path(options.emulator_config),
    )


def check_load_shape(options: argparse.Namespace) -> None:
    """Locust's own load options that cannot work, as one line each: users (``-u``, a
    scenario's ``users``, ``LOCUST_USERS``) below 1, a spawn rate of 0 or less. Locust takes
    ``--users 0`` or ``-1`` and fails later with a traceback; unset values are Locust's
    defaults (1 user, 1 per second)."""
    users = _number("users", getattr(options, "num_users", None), int)
    if users is not None and users < 1:
        raise ConfigError(f"--users {users:g} must be at least 1 (the peak number of users)")
    spawn_rate = _number("spawn-rate", getattr(options, "spawn_rate", None), float)
    if spawn_rate is not None and spawn_rate <= 0:
        raise ConfigError(f"--spawn-rate {spawn_rate:g} must be greater than 0 (users per second)")


def probe_tcp(url: str, timeout_s: float = 3.0) -> str | None:
    """Open (and close) one TCP connection to ``url``'s host and port.

    Returns ``None`` when it connects, else a one-line problem naming the URL. Only TCP, on
    purpose: no WebSocket handshake, so a target's per-connection behaviour (the emulator's
    fault-by-Nth-connection) is not shifted by the probe.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return (
            f"cannot connect to {parts.scheme}://{host}:{port} ({reason.lower()}):"
            " is the emulator or target running, and is the URL right?"
        )
