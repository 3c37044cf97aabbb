"""End to end: under the emulator's [realism] profile the harness's numbers stay right.

Two emulators on 127.0.0.1 vary their output (every variation of the profile on; one splits
every reference turn at a pause inside it, the other merges every turn with the next). Real
sessions (the load client, real-time paced) stream the 5-turn ``conversation`` fixture and
speak Aura texts. The emulator's ``--trace`` is the ground truth: it holds the CLOCK_MONOTONIC
send time of every ``EndOfTurn`` and what the profile varied. The test asserts that

- no session fails: Warnings, unknown fields and word timings left out are findings of
  severity warning/info, never violations;
- the turns the profile split or merged are counted as split / merged, and every word lands
  in its own turn (WER 0);
- every ``flux.eot`` equals the trace's truth: the send time of the ``EndOfTurn`` that ends the
  turn (the first one sent once more than half of the turn's speech was scheduled) minus the
  turn's scheduled end of speech ``S(offset)``, within loopback delivery time. A client that
  paired ``EndOfTurn`` messages with turns by index would be off by whole turns here.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from voiceload.audio import prepare
from voiceload.cli.emulate import load_references
from voiceload.client import flux_session
from voiceload.client.aura_session import AuraOptions, AuraSession
from voiceload.client.flux_session import FluxOptions, FluxSession
from voiceload.client.results import ListSink, SessionResult
from voiceload.emulator.behaviour import parse_config
from voiceload.emulator.realism import AURA_WARNING_CODE, FLUX_WARNING_CODE
from voiceload.emulator.server import BackgroundEmulator, ServerOptions
from voiceload.emulator.trace import TraceWriter
from voiceload.fixtures import load_manifest
from voiceload.protocol import gateway
from voiceload.protocol.flux import Severity

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "fixtures" / "audio" / "manifest.toml"
FIXTURE = "conversation"
FRAME_MS = 80
EOT_DELAY_MS = 200
#: Loopback delivery (emulator send -> client receive) under a loaded 2-core machine.
TOLERANCE_MS = 40.0
FLUX_PARAMS = [("encoding", "linear16"), ("sample_rate", "16000")]
EVERYTHING_ELSE = {"flux_warning": 1.0, "aura_warning": 1.0, "omit_optional": 1.0,
                   "extra_fields": 1.0}  # fmt: skip


def _config(**realism: float) -> dict[str, Any]:
    return {
        "seed": 14,
        "latency": {"flux": {"eot_delay": {"kind": "fixed", "ms": EOT_DELAY_MS}},
                    "aura": {"first_byte": {"kind": "fixed", "ms": 20}}},
        "realism": {**EVERYTHING_ELSE, **realism},
    }  # fmt: skip


@pytest.fixture
def t0s(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[int, int]]:
    """Each session thread's scheduled start t0 (S(a) = t0 + a), as the session drew it."""
    starts: dict[int, int] = {}
    original = flux_session.start_time_ns

    def recording(now_ns: int, frame_ms: int, rng: random.Random) -> int:
        t0 = original(now_ns, frame_ms, rng)
        starts[threading.get_ident()] = t0
        return t0

    monkeypatch.setattr(flux_session, "start_time_ns", recording)
    yield starts


def _run_flux(url: str, out: dict[str, Any], t0s: dict[int, int]) -> None:
    fixture = next(f for f in load_manifest(MANIFEST).fixtures if f.name == FIXTURE)
    frames = prepare(fixture.path, 16000, FRAME_MS).frames
    sink = ListSink()
    result = FluxSession(url, {}, [], frames, fixture.turns, FRAME_MS, sink, random.Random(5),
                         fixture=FIXTURE, options=FluxOptions()).run()  # fmt: skip
    out.update(result=result, sink=sink, turns=fixture.turns,
               t0=t0s[threading.get_ident()])  # fmt: skip


def _run_aura(url: str, out: dict[str, Any]) -> None:
    texts = ["Sure, I can help with that.", "Your table is booked for seven."]
    out["result"] = AuraSession(url, {}, [], texts, ListSink(),
                                options=AuraOptions(request_timeout_s=10.0)).run()  # fmt: skip


def _trace(path: Path) -> tuple[list[int], list[dict[str, Any]]]:
    """Send times of the Flux connection's EndOfTurn messages, and what realism varied."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    flux_conn = next(r["conn"] for r in records if r["ev"] == "open" and r["service"] == "flux")
    ends = [r["send_ns"] for r in records if r["ev"] == "send" and r["conn"] == flux_conn
            and r.get("event") == "EndOfTurn"]  # fmt: skip
    varied = [v for r in records if r["ev"] == "realism" and r["conn"] == flux_conn
              for v in r["varied"]]  # fmt: skip
    return ends, varied


def _truth_ms(t0: int, onset_s: float, offset_s: float, ends_ns: list[int]) -> float:
    """The trace's flux.eot for one turn: the first EndOfTurn sent once more than half of the
    turn's speech was scheduled, minus S(offset) (negative: premature)."""
    midpoint_ns = t0 + round((onset_s + offset_s) / 2 * 1e9)
    end_ns = next(t for t in ends_ns if t >= midpoint_ns)
    return (end_ns - (t0 + round(offset_s * 1e9))) / 1e6


def _no_failure_and_findings_by_severity(result: SessionResult, codes: set[str]) -> None:
    assert result.error is None, result.error
    assert result.findings_of(Severity.VIOLATION) == 0, result.findings
    warnings = {f.code for f in result.findings if f.severity is Severity.WARNING}
    assert warnings == codes, result.findings


def test_split_and_merged_turns_keep_every_metric_right(
    tmp_path: Path, t0s: dict[int, int]
) -> None:
    references = load_references(MANIFEST)
    runs: dict[str, dict[str, Any]] = {"split": {}, "merge": {}, "aura": {}}
    configs = {"split": _config(split_turn=1.0), "merge": _config(merge_turns=1.0)}
    traces = {name: tmp_path / f"{name}.jsonl" for name in configs}
    with (
        BackgroundEmulator(ServerOptions(config=parse_config(configs["split"]),
                                         references=references),
                           trace=TraceWriter(traces["split"])) as split_emu,
        BackgroundEmulator(ServerOptions(config=parse_config(configs["merge"]),
                                         references=references),
                           trace=TraceWriter(traces["merge"])) as merge_emu,
    ):  # fmt: skip
        def flux_url(emu: BackgroundEmulator) -> str:
            return gateway.gateway_url(emu.url, "acct", "gw", "@cf/deepgram/flux", FLUX_PARAMS)

        aura_url = gateway.gateway_url(split_emu.url, "acct", "gw", "@cf/deepgram/aura-1",
                                       [("encoding", "linear16"), ("sample_rate", "24000")])
        threads = [
            threading.Thread(target=_run_flux, args=(flux_url(split_emu), runs["split"], t0s)),
            threading.Thread(target=_run_flux, args=(flux_url(merge_emu), runs["merge"], t0s)),
            threading.Thread(target=_run_aura, args=(aura_url, runs["aura"])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
            assert not thread.is_alive()

    # Aura: a Warning before every Flushed is a finding, every request still measured
    aura_result: SessionResult = runs["aura"]["result"]
    _no_failure_and_findings_by_severity(aura_result, {AURA_WARNING_CODE})
    assert all(r.ttfb_us is not None and r.flushed_us is not None
               for r in aura_result.aura_requests)  # fmt: skip

    for name, run in runs.items():
        if name == "aura":
            continue
        result: SessionResult = run["result"]
        _no_failure_and_findings_by_severity(result, {FLUX_WARNING_CODE})
        assert result.findings_of(Severity.INFO) > 0  # the unknown field: noted, not fatal
        ends_ns, varied = _trace(traces[name])
        kinds = [v["kind"] for v in varied]
        assert result.turns_ended == len(run["turns"]) == 5
        assert result.wer == 0.0  # every word in its own turn, split or merged
        assert result.turns_extra == 0
        if name == "split":
            # the profile split every pause inside a turn: 5 pauses, in 4 of the 5 turns
            assert kinds.count("split_turn") == 5 and result.turns_split == 4
            assert len(ends_ns) == 5 + 5 and result.turns_merged == 0
        else:
            # every turn joined the next: one EndOfTurn ends all five
            assert kinds.count("merge_turns") == 4 and len(ends_ns) == 1
            assert result.turns_merged == 5 and result.turns_split == 0
        # every flux.eot the client measured is the trace's truth for that turn
        measured = {t.index: t.eot_us / 1000 for t in result.turns if t.eot_us is not None}
        assert measured, result.turns
        for index, eot_ms in measured.items():
            turn = run["turns"][index]
            truth = _truth_ms(run["t0"], turn.onset_s, turn.offset_s, ends_ns)
            assert abs(eot_ms - truth) <= TOLERANCE_MS, (name, index, eot_ms, truth)
        recorded = run["sink"].values("flux.eot")
        assert len(recorded) == len(measured)  # one sample per ended turn (merged: one)
        if name == "merge":
            last = run["turns"][-1]
            truth = _truth_ms(run["t0"], last.onset_s, last.offset_s, ends_ns)
            assert truth == pytest.approx(EOT_DELAY_MS, abs=FRAME_MS + TOLERANCE_MS)
