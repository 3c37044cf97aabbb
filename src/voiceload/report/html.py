"""One self-contained HTML page (and junit.xml, summary.json additions) from a report model.

The page inlines its CSS and its figures (SVG), loads nothing from the network (a
Content-Security-Policy forbids it), and prints cleanly. :func:`write_outputs` is the only
function here that touches files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import jinja2

from voiceload.credentials import REDACTED
from voiceload.report.figures import Figure
from voiceload.report.model import SUMMARY_FALLBACK, ReportModel, read_json_object

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("voiceload.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _ms(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"


def _num(value: object) -> str:
    return f"{value:,.1f}" if isinstance(value, int | float) else "—"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _secs(value: float | None) -> str:
    if value is None:
        return "unknown"
    minutes, seconds = divmod(value, 60)
    return f"{value:,.1f} s ({int(minutes)} min {seconds:.0f} s)"


def render(model: ReportModel, figures: Sequence[Figure]) -> str:
    """The whole page as one string."""
    template = _ENV.get_template("report.html.j2")
    return template.render(
        m=model, figures=list(figures), ms=_ms, num=_num, pct=_pct, secs=_secs,
        redacted=REDACTED,
        config_json=json.dumps(model.config, indent=2, sort_keys=True),
        environment_json=json.dumps(model.environment, indent=2, sort_keys=True),
    )


def junit_xml(model: ReportModel) -> str:
    """JUnit XML: one test case per SLO (skipped when not measured) and one for validity."""
    cases: list[str] = []
    failures = skipped = 0
    for r in model.slo_results:
        name = quoteattr(r.name)
        if r.passed is None:
            skipped += 1
            cases.append(f'  <testcase classname="voiceload.slo" name={name}>'
                         '<skipped message="metric not measured in this run"/></testcase>')
        elif r.passed:
            cases.append(f'  <testcase classname="voiceload.slo" name={name}/>')
        else:
            failures += 1
            msg = quoteattr(f"measured {r.measured_ms:g} ms > limit {r.limit_ms:g} ms")
            cases.append(f'  <testcase classname="voiceload.slo" name={name}>'
                         f'<failure message={msg}/></testcase>')
    vname = quoteattr("run validity")
    if model.valid is True:
        cases.append(f'  <testcase classname="voiceload.validity" name={vname}/>')
    else:
        failures += 1
        reason = "; ".join(model.validity_reasons) or "no validity verdict in summary.json"
        cases.append(f'  <testcase classname="voiceload.validity" name={vname}>'
                     f"<failure message={quoteattr(reason)}/></testcase>")
    head = (f'<testsuite name={quoteattr("voiceload " + model.run_id)} tests="{len(cases)}" '
            f'failures="{failures}" errors="0" skipped="{skipped}">')
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join([head, *cases,
                                                                   "</testsuite>"]) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(run_dir: Path, model: ReportModel, page: str) -> dict[str, Path]:
    """Write ``report.html`` and ``junit.xml`` and add ``slo``/``cost`` to ``summary.json``.

    The additions are merged into a ``summary.json`` that parses as a JSON object (its own
    fields kept). A missing one is created holding ``run_id``, ``missing``, ``slo`` and
    ``cost``, so CI still finds the verdicts. One that exists but cannot be parsed is never
    overwritten (it may be the only copy of the run's numbers): the same object goes to
    :data:`~voiceload.report.model.SUMMARY_FALLBACK` beside it, and the page's "missing" list
    says so. ``paths["summary"]`` is the file written.
    """
    paths = {"report": run_dir / "report.html", "junit": run_dir / "junit.xml",
             "summary": run_dir / "summary.json"}
    _write_atomic(paths["report"], page)
    _write_atomic(paths["junit"], junit_xml(model))
    summary: dict[str, Any] = {"run_id": model.run_id, "missing": model.missing}
    if paths["summary"].exists():
        try:
            summary = read_json_object(paths["summary"])
        except (OSError, ValueError):
            paths["summary"] = run_dir / SUMMARY_FALLBACK
    summary.update(model.summary_additions())
    _write_atomic(paths["summary"], json.dumps(summary, indent=2) + "\n")
    return paths
