"""Write a synthetic, seeded run directory with every artifact a real run leaves.

Used for the report's golden-file test (``tests/data/run_golden``, a four-minute run) and for the
report benchmark (``scripts/bench_report.py``, a one-hour run). Samples go through the same path
as a real run — :class:`voiceload.metrics.Recorder` per worker, drained every interval into one
:class:`voiceload.metrics.Aggregator` — and run.json / sessions.csv / summary.json are written with
:mod:`voiceload.runner.artifacts`, so the files follow docs/ARCHITECTURE.md exactly.

The numbers are made up but shaped like a voice workload: lognormal latencies around published
figures, Flux sessions of 20–70 s of audio, Aura requests of 100–400 characters, a few failures
of each gateway category. Everything derives from ``--seed``; the same seed gives the same files.

    .venv/bin/python scripts/make_golden_run.py tests/data/run_golden --seed 6 --duration-s 240
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import sys
from pathlib import Path
from typing import Any

from voiceload import metrics
from voiceload.client.results import SESSIONS_CSV_COLUMNS
from voiceload.metrics import Phase
from voiceload.runner import artifacts
from voiceload.runner.validity import WorkerHealth, judge

START_WALL_S = 1_795_000_000.0  # 2026-11-18T11:06:40Z: fixed so the files never change
FIXTURES = {  # name: (audio seconds, turns, has a reference transcript)
    "counting_en": (22.0, 2, True),
    "weather_en": (35.0, 3, True),
    "arctic_a0001": (4.0, 1, True),
    "noise_only": (10.0, 0, False),
}
FAILURES = [  # (category, first message)
    ("gateway_not_found", "gateway_not_found: upgrade refused (HTTP 400, code 2001)"),
    ("unauthorized", "unauthorized: upgrade refused (HTTP 401, code 2009)"),
    ("connection_failed", "connection_failed: timed out during opening handshake"),
    ("closed_by_server", "closed_by_server: connection closed (close code 1011)"),
]
#: Failures after which the session's first WebSocket was open (the others fail its handshake,
#: so the session opened none: ``connections`` counts successful handshakes, as the client does).
OPENED_BEFORE_FAILING = {"closed_by_server"}


def _lognormal_us(rng: random.Random, median_ms: float, sigma: float) -> int:
    return max(0, int(median_ms * 1000 * math.exp(rng.gauss(0.0, sigma))))


def _phase(t_s: float, ramp_s: float, steady_end_s: float) -> Phase:
    if t_s < ramp_s:
        return Phase.RAMP_UP
    return Phase.STEADY if t_s < steady_end_s else Phase.TEARDOWN


def generate_run(
    run_dir: Path, *, seed: int, duration_s: float, interval_s: float = 5.0,
    sessions_per_s: float = 0.5, ramp_s: float = 20.0, teardown_s: float = 10.0,
    send_lag_every: int = 4,
) -> dict[str, Any]:
    """Write a complete run directory; returns its summary.json content.

    ``send_lag_every``: record one ``flux.send_lag`` sample per that many 80 ms frames (the
    benchmark uses a larger stride to keep generation quick; the report does not care).
    """
    rng = random.Random(seed)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    steady_end_s = duration_s - teardown_s
    run_id = artifacts.new_run_id(START_WALL_S, f"golden{seed}")
    samples: list[tuple[float, str, int, str]] = []  # (t since start, metric, µs, worker)
    rows: list[dict[str, Any]] = []
    t = 0.0
    n = 0
    while True:
        t += rng.expovariate(sessions_per_s)
        if t >= duration_s - 75.0:  # the longest session (~70 s) ends before the run does
            break
        n += 1
        worker = f"worker-{1 + n % 2}"
        user_type = rng.choices(["flux", "aura", "agent"], weights=[3, 2, 1])[0]
        fixture = rng.choice(list(FIXTURES))
        audio_s, turns, has_ref = FIXTURES[fixture]
        row: dict[str, Any] = dict.fromkeys(SESSIONS_CSV_COLUMNS, "")
        row.update(session_id=f"s{n:05d}", worker=worker, user_type=user_type,
                   phase=_phase(t, ramp_s, steady_end_s).value, start_s=round(START_WALL_S + t, 3),
                   outcome="ok", turns_expected=0, turns_ended=0, turns_missed=0,
                   turns_premature=0, turns_resumed=0, turns_split=0, turns_merged=0,
                   turns_extra=0, findings=0, findings_warning=0, findings_info=0,
                   connections=1, flux_audio_s=0.0, aura_chars=0, aura_audio_s=0.0)
        failed = rng.random() < 0.04
        first: dict[str, float] = {}

        def rec(at_s: float, metric: str, value_us: int, worker: str = worker,
                first: dict[str, float] = first) -> None:
            samples.append((at_s, metric, value_us, worker))
            key = metric.split(".")[1] + "_ms"
            if key in ("ttft_ms", "eot_ms", "ttfb_ms", "ttfa_ms", "voice_to_voice_ms"):
                first.setdefault(key, round(value_us / 1000, 3))

        length_s = 0.0
        if user_type in ("flux", "agent"):
            row["fixture"] = fixture
            row["model"] = "@cf/deepgram/flux" if user_type == "flux" else "flux+aura-2-en"
            rec(t, "flux.connect", _lognormal_us(rng, 45, 0.3))
            if failed:
                category, message = rng.choice(FAILURES)
                row.update(outcome="error", error_category=category, error_detail=message,
                           connections=int(category in OPENED_BEFORE_FAILING))
                length_s = 0.2
            else:
                streamed_s = audio_s + 1.0 + rng.random() * 1.5  # trailing silence until EoT
                rec(t + 0.3, "flux.first_response", _lognormal_us(rng, 180, 0.2))
                for i in range(turns):
                    at = t + audio_s * (i + 1) / max(1, turns)
                    rec(at, "flux.ttft", _lognormal_us(rng, 330, 0.25))
                    rec(at, "flux.eot", _lognormal_us(rng, 280, 0.35))
                    if user_type == "agent":
                        rec(at + 0.5, "agent.voice_to_voice", _lognormal_us(rng, 820, 0.25))
                        rec(at + 0.4, "aura.ttfb", _lognormal_us(rng, 150, 0.3))
                        rec(at + 0.4, "aura.ttfa", _lognormal_us(rng, 190, 0.3))
                for k in range(int(streamed_s / 0.25)):
                    rec(t + k * 0.25, "flux.transcript_lag", _lognormal_us(rng, 120, 0.3))
                for k in range(0, int(streamed_s / 0.08), send_lag_every):
                    rec(t + k * 0.08, "flux.send_lag", _lognormal_us(rng, 0.55, 0.6))
                    rec(t + k * 0.08, "harness.recv_delay", _lognormal_us(rng, 0.8, 0.5))
                missed = 1 if turns and rng.random() < 0.05 else 0
                premature = 1 if turns and rng.random() < 0.03 else 0
                row.update(turns_expected=turns, turns_ended=turns - missed,
                           turns_missed=missed, turns_premature=premature,
                           turns_resumed=int(rng.random() < 0.1),
                           findings=int(rng.random() < 0.02),
                           flux_audio_s=round(streamed_s, 3))
                # turn pairing and softer findings draw from their own generator, so adding
                # them left every other number of the golden run as it was
                aside = random.Random(f"{seed}-aside-{n}")
                merged = 2 if turns - missed >= 2 and aside.random() < 0.05 else 0
                row.update(turns_split=int(turns > 0 and aside.random() < 0.05),
                           turns_merged=merged, turns_extra=int(aside.random() < 0.03),
                           findings_warning=int(aside.random() < 0.1),
                           findings_info=int(aside.random() < 0.05))
                if has_ref:
                    row["wer"] = round(rng.choice([0.0, 0.0, 0.0, 0.05, 0.1]), 4)
                length_s = streamed_s + 0.2
            if user_type == "agent":
                if not failed:
                    row["connections"] = 2
                chars = 0 if failed else 120 * max(1, turns)
                row.update(aura_chars=chars, aura_audio_s=round(chars / 15.0, 3))
        else:
            row["fixture"] = "reply_text"
            row["model"] = rng.choice(["@cf/deepgram/aura-2-en", "@cf/deepgram/aura-1"])
            rec(t, "aura.connect", _lognormal_us(rng, 40, 0.3))
            if failed:
                category, message = rng.choice(FAILURES)
                row.update(outcome="error", error_category=category, error_detail=message,
                           connections=int(category in OPENED_BEFORE_FAILING))
                length_s = 0.2
            else:
                requests = rng.randint(1, 3)
                chars = 0
                for i in range(requests):
                    at = t + 0.1 + i * 3.0
                    rec(at, "aura.ttfb", _lognormal_us(rng, 150, 0.3))
                    rec(at, "aura.ttfa", _lognormal_us(rng, 190, 0.3))
                    rec(at, "aura.flushed", _lognormal_us(rng, 900, 0.4))
                    rec(at, "aura.stall", _lognormal_us(rng, 2, 1.5) if rng.random() < 0.2 else 0)
                    chars += rng.randint(100, 400)
                row.update(aura_chars=chars, aura_audio_s=round(chars / 15.0, 3))
                length_s = requests * 3.0
        row["duration_s"] = round(length_s, 3)
        row.update(first)
        rows.append(row)

    samples.sort(key=lambda s: s[0])
    recorders = {w: metrics.Recorder(START_WALL_S) for w in ("worker-1", "worker-2")}
    aggregator = metrics.Aggregator(run_dir, START_WALL_S)
    i = 0
    intervals = math.ceil(duration_s / interval_s)
    for k in range(intervals):
        end = min(duration_s, (k + 1) * interval_s)
        while i < len(samples) and samples[i][0] < end:
            at, metric, value_us, worker = samples[i]
            recorders[worker].record(metric, value_us, _phase(at, ramp_s, steady_end_s))
            i += 1
        for name, recorder in recorders.items():
            aggregator.add(recorder.drain(START_WALL_S + end, final=k == intervals - 1), name)
    summary_metrics = aggregator.close()

    rows.sort(key=lambda r: float(r["start_s"]))
    sessions_csv = artifacts.SessionsCsv(run_dir / "sessions.csv")
    sessions_csv.append(rows)
    sessions_csv.close()
    cpu = {"worker-1": [31.0, 38.5, 42.0, 40.5], "worker-2": [29.5, 35.0, 36.5, 37.0]}
    health = [WorkerHealth(w, cpu[w]) for w in cpu]
    send_lag = summary_metrics.get("flux.send_lag")
    validity = judge(send_lag_p99_ms=send_lag["p99"] if send_lag else None, workers=health,
                     out_of_range={m: int(s["out_of_range"]) for m, s in summary_metrics.items()})
    summary = artifacts.build_summary(run_id, summary_metrics, rows, validity)
    artifacts.write_json(run_dir / "summary.json", summary)
    run = {
        "run_id": run_id,
        "started_at": artifacts.iso_utc(START_WALL_S),
        "ended_at": artifacts.iso_utc(START_WALL_S + duration_s),
        "duration_s": duration_s,
        "phases": {"ramp_up": [START_WALL_S, START_WALL_S + ramp_s],
                   "steady": [START_WALL_S + ramp_s, START_WALL_S + steady_end_s],
                   "teardown": [START_WALL_S + steady_end_s, START_WALL_S + duration_s]},
        "config": {"users": 12, "spawn_rate": 1, "run_time_s": duration_s, "frame_ms": 80,
                   "user_classes": {"FluxUser": 3, "AuraUser": 2, "VoiceAgentUser": 1},
                   "fixtures": sorted(FIXTURES),
                   "target": {"name": "emulator", "url": "ws://127.0.0.1:8787/v1/acct/gw/"
                              "workers-ai?model=@cf/deepgram/flux"},
                   "emulator": {"seed": seed, "eot_delay_ms": 250}, "slo_file": None,
                   "stop_timeout_s": 5},
        "git": {"commit": "0" * 40, "dirty": False},
        "fixtures": {name: f"{i:064x}" for i, name in enumerate(sorted(FIXTURES), start=1)},
        "packages": {"voiceload": "0.1.0", "locust": "2.40.0", "hdrhistogram": "0.10.3"},
        "machine": {"hostname": "golden", "cpu_model": "synthetic", "cores": 2,
                    "memory_gib": 4.0, "os": "Linux", "python": "3.11"},
        "workers": [{"id": w, "sessions": sum(1 for r in rows if r["worker"] == w),
                     "cpu_percent_mean": round(sum(cpu[w]) / len(cpu[w]), 1),
                     "cpu_percent_max": max(cpu[w]),
                     "send_lag_p99_ms": (aggregator.source_stats_ms(w, "flux.send_lag")
                                         or {"p99": None})["p99"],
                     "final_report": True, "lost": False} for w in cpu],
        "interrupted": False,
    }
    artifacts.write_json(run_dir / "run.json", run)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--duration-s", type=float, default=240.0)
    parser.add_argument("--interval-s", type=float, default=5.0)
    parser.add_argument("--sessions-per-s", type=float, default=0.6)
    args = parser.parse_args(argv)
    generate_run(args.run_dir, seed=args.seed, duration_s=args.duration_s,
                 interval_s=args.interval_s, sessions_per_s=args.sessions_per_s)
    print(f"wrote {args.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
