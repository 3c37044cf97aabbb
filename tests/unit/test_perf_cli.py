"""``python -m perf.run_perf`` refuses what it does not know before measuring anything."""

from __future__ import annotations

import pytest

import perf.run_perf as run_perf


def test_an_unknown_argument_is_refused_before_any_trial(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def started() -> None:
        raise AssertionError("a measurement started")

    monkeypatch.setattr(run_perf.Plan, "from_env", started)
    for argv in (["--help"], ["--bogus"]):
        monkeypatch.setattr("sys.argv", ["run_perf", *argv])
        with pytest.raises(SystemExit) as stop:
            run_perf.main()
        assert stop.value.code == (0 if argv == ["--help"] else 2)
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
