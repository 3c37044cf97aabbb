"""``voiceload run``: one command for a whole benchmark run (what ``make bench`` calls).

1. check the input before any load: scenario, user classes, duration, and every voiceload
   option exactly as Locust will parse it (scenario file, flags, ``VOICELOAD_*`` variables):
   frame size, target and credentials, the fixtures (manifest hash, decodable audio);
2. for the emulator target, start ``voiceload emulate`` on a free loopback port, pinned to a
   different core from Locust where the machine has two or more (``taskset``), and wait for
   ``GET /healthz``;
3. run Locust headless with ``loadtests/locustfile.py`` and the scenario file (a Locust config
   file: ``loadtests/scenarios/<name>.conf``), writing ``reports/<run-id>/``;
4. stop the emulator, even on Ctrl-C or failure;
5. run ``voiceload report`` when that command exists (with the run's SLO file, as run.json
   records it), print the summary table and where the results are. The exit code is Locust's
   (non-zero for an invalid or interrupted run), else the report's, else 1 when an SLO failed
   (as ``make bench-ci``; each failed objective is printed on its own line).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from voiceload.credentials import load_credentials
from voiceload.emulator.behaviour import load_config
from voiceload.errors import ConfigError, VoiceloadError
from voiceload.fixtures import load_manifest
from voiceload.protocol.gateway import AuthForm
from voiceload.runner import artifacts, distributed
from voiceload.runner.options import AURA_ENCODINGS, RunSettings, locust_parser, settings_from
from voiceload.runner.sessions import (
    USER_TYPES,
    Pools,
    build_pools,
    check_fixtures,
    check_pools,
)
from voiceload.spend import POLITE_LOAD, USER_CLASS_KINDS, polite_load

#: The users loadtests/locustfile.py defines (its test checks the two agree).
USER_CLASSES = ("FluxUser", "AuraUser", "VoiceAgentUser")
LOCUSTFILE = Path("loadtests/locustfile.py")
SCENARIO_DIR = Path("loadtests/scenarios")
EMULATOR_START_LIMIT_S = 30.0
LOCUST_EXIT_GRACE_S = 60.0  # after Ctrl-C, on top of the stop timeout
_LISTENING_RE = re.compile(r"listening on (ws://[\w.\-]+:\d+)")
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


class EmulatorError(VoiceloadError):
    """The bundled emulator did not start or did not become healthy."""


def parse_duration_s(text: str) -> int:
    """Locust's time span syntax: ``90``, ``90s``, ``2m``, ``1h30m`` -> seconds (> 0)."""
    match = _DURATION_RE.match(text.strip())
    if not text.strip() or match is None:
        raise ConfigError(f"duration {text!r} is not a time span like 90s, 2m or 1h30m")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ConfigError(f"duration {text!r} must be longer than 0 s")
    return total


def read_scenario(path: Path) -> dict[str, str]:
    """The ``key = value`` lines of a Locust config file (comments and blanks skipped)."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def find_scenario(name: str, scenario_dir: Path = SCENARIO_DIR) -> Path:
    """A scenario by name (``default`` -> ``loadtests/scenarios/default.conf``) or by path."""
    candidate = Path(name)
    if candidate.suffix == ".conf" and candidate.is_file():
        return candidate
    path = scenario_dir / f"{name}.conf"
    if path.is_file():
        return path
    known = sorted(p.stem for p in scenario_dir.glob("*.conf"))
    raise ConfigError(
        f"unknown scenario {name!r}: choose one of {', '.join(known) or '(none found)'}"
        f" in {scenario_dir}, or give a path to a Locust .conf file"
    )


def check_user_classes(names: Sequence[str]) -> list[str]:
    """``names`` if every one is a user class of the locustfile, else :class:`ConfigError`."""
    unknown = [n for n in names if n not in USER_CLASSES]
    if unknown:
        raise ConfigError(
            f"unknown user type {', '.join(unknown)}: choose from {', '.join(USER_CLASSES)}"
        )
    return list(names)


@dataclass(frozen=True)
class Pinning:
    """Which CPU cores the emulator and Locust run on (``None``: not pinned)."""

    emulator_core: int | None
    locust_core: int | None

    @staticmethod
    def for_machine(cores: int | None, taskset: str | None) -> Pinning:
        """Different cores when there are two or more and ``taskset`` exists."""
        if taskset is None or cores is None or cores < 2:
            return Pinning(None, None)
        return Pinning(emulator_core=cores - 1, locust_core=0)


def pinned(command: list[str], core: int | None) -> list[str]:
    """``command`` prefixed with ``taskset -c core`` when ``core`` is set."""
    return command if core is None else ["taskset", "-c", str(core), *command]


class Emulator:
    """``voiceload emulate`` as a child process on a free loopback port (a context manager).

    Its output goes to ``log_path``; :meth:`__enter__` returns once it printed its URL and
    answered ``/healthz``, :meth:`__exit__` stops it (SIGTERM, then SIGKILL after 10 s).
    """

    def __init__(self, log_path: Path, core: int | None, config: Path | None = None) -> None:
        self.log_path = log_path
        self.core = core
        self.config = config
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Emulator:
        command = [sys.executable, "-m", "voiceload.cli", "emulate", "--host", "127.0.0.1",
                   "--port", "0"]  # fmt: skip
        if self.config is not None:
            command += ["--config", str(self.config)]
        with self.log_path.open("wb") as log:
            # Own session: a terminal Ctrl-C reaches Locust, which needs the emulator while
            # its users stop; we stop the emulator ourselves afterwards.
            self._process = subprocess.Popen(
                pinned(command, self.core), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            self.url = self._wait_for_url()
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _wait_for_url(self) -> str:
        assert self._process is not None
        deadline = time.monotonic() + EMULATOR_START_LIMIT_S
        while time.monotonic() < deadline:
            match = _LISTENING_RE.search(self._output())
            if match:
                return match.group(1)
            if self._process.poll() is not None:
                last = self._output().strip().splitlines()[-1:] or ["(no output)"]
                raise EmulatorError(
                    f"the emulator exited with code {self._process.returncode} before"
                    f" listening: {last[0]} (full log: {self.log_path})"
                )
            time.sleep(0.05)
        raise EmulatorError(
            f"the emulator printed no 'listening on' line within {EMULATOR_START_LIMIT_S:g} s"
            f" (log: {self.log_path})"
        )

    def _wait_healthy(self) -> None:
        health_url = self.url.replace("ws://", "http://", 1) + "/healthz"
        deadline = time.monotonic() + EMULATOR_START_LIMIT_S
        problem = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(health_url, timeout=2) as response:
                    if response.status == 200:
                        return
                    problem = f"HTTP {response.status}"
            except OSError as exc:
                problem = str(exc)
            time.sleep(0.1)
        raise EmulatorError(f"{health_url} did not answer 200 ({problem}); log: {self.log_path}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    add = parser.add_argument
    add("--scenario", default="default",
        help="scenario name in loadtests/scenarios (a Locust .conf file) or a path to one")
    add("--users", type=int, default=None, help="peak concurrent users (overrides the scenario)")
    add("--spawn-rate", type=float, default=None, help="users started per second")
    add("--duration", default=None, help="run time, e.g. 90s or 2m (overrides the scenario)")
    add("--user-classes", default="",
        help=f"comma-separated subset of {', '.join(USER_CLASSES)} (default: the scenario's)")
    add("--target", default="emulator", help="emulator (started for you), gateway, ... or a URL")
    add("--emulator-url", default=None,
        help="use an emulator that is already running instead of starting one")
    add("--emulator-config", type=Path, default=None, help="TOML config for the emulator")
    add("--frame-ms", type=int, default=None, help="Flux frame size (multiple of 10 ms)")
    add("--fixtures", default=None, help="comma-separated fixture names")
    add("--reports-dir", type=Path, default=Path("reports"), help="where run directories go")
    add("--no-report", action="store_true", help="skip `voiceload report` after the run")
    add("--base-url", default=None,
        help="replace scheme and host of the target's routes (e.g. a loopback emulator)")
    add("--auth-form", default=None, choices=[f.value for f in AuthForm],
        help="how the token is sent (default per target; see voiceload check --help)")
    add("--header", action="append", default=[], metavar="'K: V'",
        help="extra upgrade header for every connection (repeatable); its value is a secret")
    add("--aura-url", default=None, help="Aura endpoint of a ws:// --target")
    add("--sample-rate", type=int, default=None, help="Flux input sample rate in Hz")
    add("--eot-threshold", type=float, default=None,
        help="Flux eot_threshold (0.5 .. 0.9; Deepgram: .. 1.0)")
    add("--keyterm", action="append", default=[], help="Flux keyterm to boost (repeatable)")
    add("--aura-encoding", default=None, choices=AURA_ENCODINGS,
        help="Aura output encoding sent as encoding= with its sample_rate= (default: not"
             " sent on Workers AI routes, linear16 on deepgram)")
    add("--slo-file", type=Path, default=None,
        help="SLO TOML for the report step (recorded in run.json; default: the shipped one)")
    add("--yes", action="store_true",
        help="accept the spend estimate of a paid target (or VOICELOAD_CONFIRM=1)")
    add("--workers", type=int, default=0,
        help="run a Locust master and this many worker processes on this machine (0: one process)")
    add("locust_args", nargs=argparse.REMAINDER,
        help="after --: extra Locust options, passed through unchanged")  # fmt: skip


def locust_command(
    *,
    scenario: Path,
    run_dir: Path,
    emulator_url: str | None,
    args: argparse.Namespace,
    user_classes: Sequence[str],
) -> list[str]:
    """The Locust command line of one run (without pinning)."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--config", str(scenario),
               "--headless", "--csv", str(run_dir / "locust"), "--run-dir", str(run_dir),
               "--reports-dir", str(args.reports_dir), "--target", args.target]  # fmt: skip
    if emulator_url:
        command += ["--emulator-url", emulator_url]
    if args.users is not None:
        command += ["--users", str(args.users)]
    if args.spawn_rate is not None:
        command += ["--spawn-rate", str(args.spawn_rate)]
    if args.duration is not None:
        command += ["--run-time", f"{parse_duration_s(args.duration)}s"]
    if args.frame_ms is not None:
        command += ["--frame-ms", str(args.frame_ms)]
    if args.fixtures is not None:
        command += ["--fixtures", args.fixtures]
    if args.base_url:
        command += ["--base-url", args.base_url]
    for flag, value in (
        ("--auth-form", args.auth_form), ("--aura-url", args.aura_url),
        ("--sample-rate", args.sample_rate), ("--eot-threshold", args.eot_threshold),
        ("--aura-encoding", args.aura_encoding), ("--slo-file", args.slo_file),
    ):  # fmt: skip
        if value is not None:
            command += [flag, str(value)]
    for flag, values in (("--header", args.header), ("--keyterm", args.keyterm)):
        for value in values:
            command += [flag, value]
    if args.emulator_config is not None:
        command += ["--emulator-config", str(args.emulator_config)]
    if args.yes:
        command += ["--yes"]
    extra = [a for a in args.locust_args if a != "--"]
    return [*command, *extra, *user_classes]


def locust_options(command: Sequence[str]) -> argparse.Namespace:
    """What Locust will parse from ``command`` (a :func:`locust_command`): its config file,
    flags and ``LOCUST_*``/``VOICELOAD_*`` variables, with voiceload's options."""
    options: argparse.Namespace = locust_parser().parse_args(list(command[3:]))  # after -m locust
    return options


def user_types_of(options: argparse.Namespace) -> list[str]:
    """The voiceload user types a run will have: those of the user classes named on the Locust
    command line (else all of them), less those ``--config-users`` gives weight 0 and no
    ``fixed_count`` (Locust never starts such a class)."""
    idle: set[str] = set()
    for entry in itertools.chain.from_iterable(getattr(options, "config_users", None) or []):
        name = entry.get("user_class_name") if isinstance(entry, dict) else None
        if name in USER_CLASS_KINDS:
            weight, fixed = entry.get("weight"), entry.get("fixed_count")
            if weight is not None and weight <= 0 and not fixed:
                idle.add(name)
            else:
                idle.discard(name)
    named = options.user_classes or list(USER_CLASS_KINDS)
    kinds = {USER_CLASS_KINDS[n] for n in named if n in USER_CLASS_KINDS and n not in idle}
    return [t for t in USER_TYPES if t in kinds] if not options.user_classes else sorted(kinds)


def check_run_input(options: argparse.Namespace) -> tuple[RunSettings, bool]:
    """Check voiceload's options as Locust's ``init`` will, before anything starts.

    Returns the settings and whether the target is paid (:attr:`Target.is_real`). Raises
    :class:`ConfigError` (one line) for a bad option, a missing credential, an unknown fixture,
    or a fixture that no longer matches the manifest or does not decode."""
    settings = settings_from(options)
    target = settings.resolve_target(load_credentials())
    manifest = load_manifest()
    pools = build_pools(manifest, settings.fixtures)
    user_types = user_types_of(options)
    check_pools(pools, user_types, str(manifest.path))
    check_fixtures(pools, user_types, sample_rate=settings.sample_rate, frame_ms=settings.frame_ms)
    warning = stop_timeout_warning(pools, user_types, float(options.stop_timeout or 0))
    if warning:
        print(f"voiceload: warning: {warning}", file=sys.stderr)
    return settings, target.is_real


#: Trailing silence, the end of turn, and an agent's last reply, beyond the fixture's length.
SESSION_TAIL_S = 5.0


def stop_timeout_warning(pools: Pools, user_types: Iterable[str], stop_timeout_s: float) -> str:
    """A line when a session started just before the run ends could not finish within Locust's
    stop timeout: it would be cut, recorded as ``harness_error`` (and Locust would exit 1)."""
    audio = pools.audio_fixtures(user_types)
    if not audio:
        return ""
    longest = max(audio, key=lambda f: f.duration_s)
    needed_s = longest.duration_s + SESSION_TAIL_S
    if stop_timeout_s >= needed_s:
        return ""
    return (
        f"--stop-timeout {stop_timeout_s:g} s is shorter than the longest session "
        f"({longest.name}: {longest.duration_s:.1f} s of audio + {SESSION_TAIL_S:g} s); sessions "
        f"still running when the run time ends will be cut and counted as harness_error. "
        f"Use --stop-timeout {int(needed_s) + 1} (or more) to let them finish."
    )


def _run_locust(command: list[str], core: int | None, stop_grace_s: float) -> int:
    """Run Locust in the foreground; Ctrl-C reaches it directly, SIGTERM is forwarded."""
    process = subprocess.Popen(pinned(command, core))

    def forward(signum: int, frame: FrameType | None) -> None:
        process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                # Locust got the same SIGINT: give it time to stop users and write artifacts.
                try:
                    return process.wait(timeout=stop_grace_s)
                except (subprocess.TimeoutExpired, KeyboardInterrupt):
                    process.kill()
                    return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _launch(command: list[str], args: argparse.Namespace, run_dir: Path, pinning: Pinning,
            stop_grace_s: float) -> int:
    """Locust in the foreground: one local process, or a master and ``--workers`` workers."""
    if not args.workers:
        return _run_locust(command, pinning.locust_core, stop_grace_s)
    return distributed.run_with_workers(
        command, args.workers, run_dir,
        lambda master: _run_locust(master, pinning.locust_core, stop_grace_s),
        emulator_core=pinning.emulator_core, cores=os.cpu_count(),
    )  # fmt: skip


def format_summary(summary: Mapping[str, Any]) -> str:
    """The terminal table: steady-phase percentiles per metric, errors, validity."""
    lines = [f"{'metric (steady, ms)':<24}{'count':>8}{'p50':>10}{'p90':>10}{'p99':>10}"
             f"{'p99.9':>10}{'max':>10}"]  # fmt: skip

    def cell(value: Any) -> str:
        return f"{value:>10.1f}" if isinstance(value, int | float) else f"{'-':>10}"

    for name, stats in summary.get("metrics", {}).items():
        lines.append(
            f"{name:<24}{stats.get('count', 0):>8}{cell(stats.get('p50'))}{cell(stats.get('p90'))}"
            f"{cell(stats.get('p99'))}{cell(stats.get('p99_9'))}{cell(stats.get('max'))}"
        )
    sessions = summary.get("sessions", {})
    lines.append(
        f"sessions: {sessions.get('total', 0)} total, {sessions.get('ok', 0)} ok,"
        f" {sessions.get('failed', 0)} failed"
    )
    for category, entry in summary.get("errors", {}).items():
        lines.append(f"  {category}: {entry['count']} (first: {entry['first_message']})")
    validity = summary.get("validity", {})
    if validity.get("valid"):
        lines.append("validity: VALID")
    else:
        lines.append("validity: INVALID")
        lines.extend(f"  - {reason}" for reason in validity.get("reasons", []))
    return "\n".join(lines)


def report_command(run_dir: Path) -> list[str]:
    """``voiceload report`` for ``run_dir``, with ``--slo`` when the run's run.json names an SLO
    file (``config.slo_file``: from ``--slo-file``, the scenario or ``VOICELOAD_SLO_FILE``)."""
    command = [sys.executable, "-m", "voiceload.cli", "report", str(run_dir)]
    run_json = run_dir / "run.json"
    config = json.loads(run_json.read_text(encoding="utf-8")).get("config") or {}
    if config.get("slo_file"):
        command += ["--slo", str(config["slo_file"])]
    return command


def failed_slos(summary: Mapping[str, Any]) -> list[str]:
    """One line per objective the report found failed (summary.json ``slo``, written by
    ``voiceload report``), e.g. ``p95 flux.eot 926.1 ms > 600 ms``."""
    lines = []
    for result in summary.get("slo") or []:
        if isinstance(result, dict) and result.get("passed") is False:
            lines.append(f"{result.get('stat')} {result.get('metric')} "
                         f"{float(result.get('measured_ms') or 0):.1f} ms > "
                         f"{float(result.get('limit_ms') or 0):g} ms")
    return lines


def _report(run_dir: Path, out: TextIO) -> int:
    from voiceload.cli import COMMANDS  # the report step is optional: run it if it exists

    if "report" not in COMMANDS:
        print("(voiceload report is not available; skipping the HTML report)", file=out)
        return 0
    return subprocess.run(report_command(run_dir)).returncode


def check_numbers(args: argparse.Namespace) -> None:
    """``voiceload run``'s own numbers, one line each before Locust parses them: users below 1
    (Locust would start and fail with a traceback), a spawn rate of 0 or less, negative
    workers."""
    if args.users is not None and args.users < 1:
        raise ConfigError(f"--users {args.users} must be at least 1 (the peak number of users)")
    if args.spawn_rate is not None and args.spawn_rate <= 0:
        raise ConfigError(f"--spawn-rate {args.spawn_rate:g} must be greater than 0")
    if args.workers < 0:
        raise ConfigError(f"--workers {args.workers} must be 0 (one process) or more")


def main(args: argparse.Namespace) -> int:
    scenario = find_scenario(args.scenario)
    user_classes = check_user_classes(
        [n.strip() for n in args.user_classes.split(",") if n.strip()]
    )
    if args.duration is not None:
        parse_duration_s(args.duration)
    check_numbers(args)
    if not LOCUSTFILE.is_file():
        raise ConfigError(f"{LOCUSTFILE} not found: run voiceload run from the repository root")
    # Everything Locust's init would refuse fails here, before the emulator starts.
    options = locust_options(locust_command(
        scenario=scenario, run_dir=args.reports_dir / "(not yet)", emulator_url=args.emulator_url,
        args=args, user_classes=user_classes,
    ))  # fmt: skip
    _, paid = check_run_input(options)
    # --emulator-config, else the scenario's own `emulator-config = FILE` (e.g. realism.conf)
    emulator_config = args.emulator_config or (
        Path(options.emulator_config) if options.emulator_config else None
    )
    if emulator_config is not None:
        load_config(emulator_config)  # a bad file: one line now, not a failed emulator start
    stop_timeout_s = float(options.stop_timeout or 0)
    if paid:  # a small load unless the user set one
        load = polite_load(
            is_real_target=True, users=args.users, spawn_rate=args.spawn_rate,
            run_time_s=None if args.duration is None else parse_duration_s(args.duration),
            default=POLITE_LOAD,
        )  # fmt: skip
        args.users, args.spawn_rate = load.users, load.spawn_rate
        args.duration = f"{int(load.run_time_s)}s"

    run_id = artifacts.new_run_id(time.time(), f"{os.getpid():x}")
    run_dir = artifacts.create_run_dir(args.reports_dir, run_id)
    pinning = Pinning.for_machine(os.cpu_count(), shutil.which("taskset"))
    print(f"voiceload run {run_id}: scenario {scenario}, results in {run_dir}", flush=True)

    start_emulator = args.target == "emulator" and args.emulator_url is None
    if start_emulator:
        with Emulator(run_dir / "emulator.log", pinning.emulator_core, emulator_config) as emu:
            print(f"emulator at {emu.url} (core {pinning.emulator_core}); Locust on core"
                  f" {pinning.locust_core}", flush=True)  # fmt: skip
            command = locust_command(scenario=scenario, run_dir=run_dir, emulator_url=emu.url,
                                     args=args, user_classes=user_classes)  # fmt: skip
            code = _launch(command, args, run_dir, pinning, stop_timeout_s + LOCUST_EXIT_GRACE_S)
    else:
        command = locust_command(scenario=scenario, run_dir=run_dir, emulator_url=args.emulator_url,
                                 args=args, user_classes=user_classes)  # fmt: skip
        code = _launch(command, args, run_dir, pinning, stop_timeout_s + LOCUST_EXIT_GRACE_S)

    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        print(f"voiceload run: Locust exited with code {code} before writing {summary_path}",
              file=sys.stderr)  # fmt: skip
        return code or 1
    report_code = 0 if args.no_report else _report(run_dir, sys.stdout)
    print()
    print(format_summary(json.loads(summary_path.read_text(encoding="utf-8"))))
    run_json = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    if run_json.get("interrupted"):
        print("run INTERRUPTED: the numbers cover only what was measured before the stop")
    print(f"\nresults: {run_dir}  (also {args.reports_dir / 'latest'})")
    if (run_dir / "report.html").is_file():
        print(f"report:  {run_dir / 'report.html'}")
    failed = failed_slos(json.loads(summary_path.read_text(encoding="utf-8")))
    for line in failed:
        print(f"SLO FAIL: {line}")
    return code or report_code or (1 if failed else 0)
