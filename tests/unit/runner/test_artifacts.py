from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from voiceload.client.results import SESSIONS_CSV_COLUMNS, SessionError, SessionResult
from voiceload.client.results import ErrorCategory as Cat
from voiceload.runner import artifacts
from voiceload.runner.validity import judge


def test_run_id_is_sortable_utc() -> None:
    assert artifacts.new_run_id(0.0) == "19700101T000000Z"
    assert artifacts.new_run_id(1_796_000_000.5, "ab12") == "20261130T005320Z-ab12"
    assert artifacts.iso_utc(1.25) == "1970-01-01T00:00:01.250Z"


def test_create_run_dir_points_latest_at_newest(tmp_path: Path) -> None:
    first = artifacts.create_run_dir(tmp_path, "a")
    second = artifacts.create_run_dir(tmp_path, "b")
    latest = tmp_path / "latest"
    assert latest.is_symlink()
    assert latest.resolve() == second.resolve()
    assert first.is_dir()
    with pytest.raises(FileExistsError):
        artifacts.create_run_dir(tmp_path, "b")


def test_custom_run_dir_elsewhere_leaves_latest_alone(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    artifacts.point_latest(tmp_path / "reports", tmp_path / "elsewhere")
    assert not (tmp_path / "reports" / "latest").exists()


def _row(**overrides: object) -> dict[str, object]:
    result = SessionResult(user_type="flux", fixture="f1", model="m", start_s=10.0)
    row: dict[str, object] = dict(result.to_row(session_id="s", worker="local", phase="steady"))
    row.update(overrides)
    return row


def test_sessions_csv_is_readable_after_each_append(tmp_path: Path) -> None:
    sessions = artifacts.SessionsCsv(tmp_path / "sessions.csv")
    sessions.append([_row(session_id="1")])
    with (tmp_path / "sessions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["session_id"] for r in rows] == ["1"]
    sessions.append([_row(session_id="2"), _row(session_id="3")])
    sessions.close()
    with (tmp_path / "sessions.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == SESSIONS_CSV_COLUMNS
        assert [r["session_id"] for r in reader] == ["1", "2", "3"]
    assert sessions.rows_written == 3


def test_summarise_sessions_counts_errors_and_wer() -> None:
    failed = SessionResult(
        user_type="aura", fixture="t", model="aura-1", start_s=0.0,
        error=SessionError(Cat.RATE_LIMITED, "slow down", http_status=429),
    )  # fmt: skip
    rows = [
        _row(wer=0.0, fixture="a"),
        _row(wer=0.5, fixture="b"),
        _row(wer=0.25, fixture="b"),
        _row(wer=""),
        failed.to_row(session_id="x"),
        failed.to_row(session_id="y"),
    ]
    summary = artifacts.summarise_sessions(rows)  # type: ignore[arg-type]
    assert summary["sessions"] == {
        "total": 6, "ok": 4, "failed": 2,
        "by_user_type": {
            "flux": {"total": 4, "ok": 4, "failed": 0},
            "aura": {"total": 2, "ok": 0, "failed": 2},
        },
    }  # fmt: skip
    assert summary["errors"] == {
        "rate_limited": {"count": 2, "first_message": "rate_limited: slow down (HTTP 429)"}
    }
    assert summary["wer"]["per_fixture"] == {"a": 0.0, "b": 0.375}
    assert summary["wer"]["overall"] == pytest.approx(0.25)


def test_summarise_sessions_counts_turns_and_findings_by_severity() -> None:
    rows = [
        _row(turns_expected=3, turns_ended=3, turns_split=1, turns_merged=2, findings=1,
             findings_warning=2, findings_info=1),
        _row(turns_expected=2, turns_ended=1, turns_missed=1, turns_extra=1, findings_warning=1),
        {k: v for k, v in _row().items() if not k.startswith(("turns_", "findings"))},  # old run
    ]  # fmt: skip
    summary = artifacts.summarise_sessions(rows)  # type: ignore[arg-type]
    assert summary["turns"] == {"expected": 5, "ended": 4, "missed": 1, "premature": 0,
                                "resumed": 0, "split": 1, "merged": 2, "extra": 1}  # fmt: skip
    assert summary["findings"] == {"violation": 1, "warning": 3, "info": 1}


def test_build_summary_and_write_json_round_trip(tmp_path: Path) -> None:
    verdict = judge(send_lag_p99_ms=1.0, workers=[], out_of_range={})
    stats = {"flux.eot": {"count": 3, "p50": 250.0}}
    summary = artifacts.build_summary("r1", stats, [_row()], verdict)  # type: ignore[list-item]
    artifacts.write_json(tmp_path / "summary.json", summary)
    loaded = json.loads((tmp_path / "summary.json").read_text())
    assert loaded["run_id"] == "r1"
    assert loaded["metrics"] == stats
    assert loaded["validity"]["valid"] is True
    assert loaded["sessions"]["total"] == 1
    assert not list(tmp_path.glob(".*tmp"))


def test_environment_facts_are_plain_json() -> None:
    machine = artifacts.machine_info()
    assert machine["cores"] and isinstance(machine["memory_gib"], float)
    versions = artifacts.package_versions(["locust", "no-such-dist-xyz"])
    assert versions["locust"] and versions["no-such-dist-xyz"] is None
    assert set(artifacts.git_info(Path("/"))) == {"commit", "dirty"}
    json.dumps({"m": machine, "v": versions})
