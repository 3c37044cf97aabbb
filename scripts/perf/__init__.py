"""``make perf``: the harness's own capacity and accuracy, measured on this machine.

A package rooted at ``scripts/``: run from there (``cd scripts && python -m perf.run_perf``, as
``make perf`` does) or with ``scripts/`` on ``PYTHONPATH`` (pytest's ``pythonpath`` setting in
pyproject.toml does this for the tests); no module edits ``sys.path``. Pure parts (tested in
``tests/unit/test_perf_*.py``): :mod:`perf.search` (capacity search), :mod:`perf.pairs`
(alternating voiceload/baseline pairs, median ratio and spread, goal verdicts),
:mod:`perf.accuracy` (harness samples vs the emulator's trace), :mod:`perf.memory` (RSS slope),
:mod:`perf.sorted_stats` (percentiles of a sorted list). I/O: :mod:`perf.harness_load` (voiceload
sessions under gevent), :mod:`perf.baseline` (plain asyncio client), :mod:`perf.procs` (pinned
processes), :mod:`perf.run_perf` (the whole measurement, writes docs/PERFORMANCE.md).
"""

from voiceload.errors import VoiceloadError


class PerfError(VoiceloadError):
    """A perf measurement could not be made or its inputs make no sense."""
