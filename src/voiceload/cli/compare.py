"""``voiceload compare BASELINE CURRENT``: did this release get slower? (and baselines).

Reads only run files (``run.json``, ``summary.json``, ``sessions.csv``, ``*.hlog``), so a
baseline kept in the repository under ``reports/baselines/NAME/`` compares as well as a fresh
run. Writes ``compare.html`` (the report's style, both runs' distributions overlaid),
``compare.md`` (a pull-request comment) and ``compare.json`` (the verdicts, for scripts) into
``--out`` (default ``CURRENT/compare``). The statistics are :mod:`voiceload.compare`'s.

Exit codes: 0 compared; 1 with ``--fail-on-regression`` when anything regressed or the current
run is not valid; 2 bad input (one line on stderr).

``voiceload compare --save-baseline NAME RUN`` copies a run's small artifacts into
``reports/baselines/NAME/`` (replacing an older baseline of that name).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

import jinja2

from voiceload import compare, cost
from voiceload.errors import ConfigError
from voiceload.report import figures, model
from voiceload.report.model import percentile_curve

#: The files a baseline keeps (the small ones; .hgrm and Locust CSVs are derivable or unused).
BASELINE_FILES: Final = ("run.json", "summary.json", "sessions.csv")
BASELINE_GLOBS: Final = ("*.hlog",)
DEFAULT_BASELINES_DIR: Final = Path("reports/baselines")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="BASELINE CURRENT: run directories or baseline names "
                             "(reports/baselines/NAME); with --save-baseline: one RUN")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="where compare.html/.md/.json go (default: CURRENT/compare)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when a metric, the error rate, WER or cost regressed, "
                             "or the current run is not valid")
    parser.add_argument("--save-baseline", default=None, metavar="NAME",
                        help="copy RUN's run.json, summary.json, sessions.csv and *.hlog to "
                             "reports/baselines/NAME/ instead of comparing")
    parser.add_argument("--baselines-dir", type=Path, default=DEFAULT_BASELINES_DIR,
                        metavar="DIR", help="where named baselines live (default: %(default)s)")
    parser.add_argument("--pricing", default=None, metavar="FILE",
                        help="pricing TOML for cost per session (default: the shipped one)")
    parser.add_argument("--confidence", type=float, default=compare.Rules.confidence,
                        help="confidence of the bootstrap intervals (default: %(default)s)")
    parser.add_argument("--relative-floor", type=float, default=compare.Rules.relative_floor,
                        help="smallest change that matters, as a fraction of the baseline "
                             "(default: %(default)s)")


# -- finding and keeping runs -------------------------------------------------------------------


def resolve_run(text: str, baselines_dir: Path) -> Path:
    """A run directory from a path or a baseline name; ConfigError naming what exists."""
    path = Path(text)
    if path.is_dir():
        return path
    named = baselines_dir / text
    if _NAME_RE.fullmatch(text) and named.is_dir():
        return named
    known = sorted(p.name for p in baselines_dir.iterdir() if p.is_dir()) \
        if baselines_dir.is_dir() else []
    hint = f"; baselines in {baselines_dir}: {', '.join(known)}" if known else \
        f"; no baselines in {baselines_dir} yet (save one with --save-baseline NAME RUN)"
    raise ConfigError(f"{text}: neither a run directory nor a baseline name{hint}")


def save_baseline(run_dir: Path, name: str, baselines_dir: Path) -> Path:
    """Copy ``run_dir``'s small artifacts to ``baselines_dir/name`` (atomically replaced)."""
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"baseline name {name!r}: use letters, digits, '.', '_' or '-'")
    source = run_dir.resolve()
    files = [source / f for f in BASELINE_FILES if (source / f).is_file()]
    files += sorted(p for g in BASELINE_GLOBS for p in source.glob(g))
    if not any(f.suffix == ".hlog" for f in files) or not (source / "summary.json").is_file():
        raise ConfigError(f"{run_dir}: no summary.json or .hlog files; pass a finished run "
                          "directory such as reports/latest")
    baselines_dir.mkdir(parents=True, exist_ok=True)
    target = baselines_dir / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=baselines_dir))
    for f in files:
        shutil.copy2(f, staging / f.name)
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=baselines_dir))
        os.replace(target, old / name)
        os.replace(staging, target)
        shutil.rmtree(old)
    else:
        os.replace(staging, target)
    return target


def load_run_data(run_dir: Path) -> tuple[compare.RunData, list[str]]:
    """Read a run with the report's loader; returns the data and what was missing."""
    files = model.load_run(run_dir)
    if not files.hlogs and files.summary is None:
        raise ConfigError(f"{run_dir}: no summary.json and no .hlog files; pass a run "
                          "directory such as reports/latest or a baseline name")
    run_id = str((files.run or {}).get("run_id") or (files.summary or {}).get("run_id")
                 or run_dir.resolve().name)
    steady = {name: reduced.steady for name, reduced in files.hlogs.items()}
    data = compare.RunData.from_histograms(run_id, steady, files.summary, files.sessions)
    return data, [f"{run_dir}: {line}" for line in files.missing]


# -- the page -----------------------------------------------------------------------------------

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("voiceload.report", "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)


def overlay_figures(
    c: compare.Comparison, baseline: compare.RunData, current: compare.RunData
) -> list[figures.Figure]:
    """One percentile ("nines") plot per compared metric, baseline and current overlaid."""
    out = []
    for i, m in enumerate(c.metrics):
        fig = figures.percentile_plot(
            [percentile_curve(f"baseline {c.baseline_id}",
                              baseline.histograms[m.metric].histogram),
             percentile_curve(f"current {c.current_id}", current.histograms[m.metric].histogram)],
            figure_id=f"fig-compare-{i}", title=f"{m.metric}: latency by percentile")
        out.append(dataclasses.replace(
            fig, caption=f"{m.metric}: latency by percentile, steady phase, both runs "
                         f"(n = {m.baseline_count} / {m.current_count}); verdict "
                         f"{m.verdict.value}."))
    return out


def render_html(
    c: compare.Comparison, figs: list[figures.Figure], baseline_dir: Path, current_dir: Path,
    missing: list[str],
) -> str:
    """The whole compare page as one self-contained string."""
    def ms(v: float | None) -> str:
        return "—" if v is None else (f"{v:,.1f}" if abs(v) >= 100 else f"{v:,.2f}")

    return _ENV.get_template("compare.html.j2").render(
        title=f"voiceload compare: {c.baseline_id} → {c.current_id}", c=c, figures=figs,
        baseline_dir=str(baseline_dir), current_dir=str(current_dir),
        missing=missing, rule_text=compare.rule_text(c), ms=ms,
        pct=lambda v: "—" if v is None else f"{100 * v:.2f} %",
        num4=lambda v: "—" if v is None else f"{v:.4g}",
        valid_text=lambda v: {True: "valid", False: "INVALID"}.get(v, "unknown"),
        box_class={"regressed": "fail", "improved": "pass", "within noise": "noise",
                   "insufficient samples": "unknown"},
    )


def comparison_json(c: compare.Comparison) -> dict[str, Any]:
    """The verdicts as plain JSON (enums as their values)."""
    def plain(value: Any) -> Any:
        if isinstance(value, compare.Verdict):
            return value.value
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    doc = plain(dataclasses.asdict(c))
    doc["verdict"] = c.verdict.value
    doc["regressions"] = c.regressions
    return dict(doc)


def write_outputs(out_dir: Path, page: str, md: str, doc: dict[str, Any]) -> dict[str, Path]:
    """Write compare.html, compare.md and compare.json into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"html": out_dir / "compare.html", "markdown": out_dir / "compare.md",
             "json": out_dir / "compare.json"}
    for key, text in (("html", page), ("markdown", md),
                      ("json", json.dumps(doc, indent=2) + "\n")):
        tmp = paths[key].with_name(f".{paths[key].name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, paths[key])
    return paths


def run_compare(
    baseline_dir: Path, current_dir: Path, out_dir: Path, *, pricing_path: str | None = None,
    rules: compare.Rules = compare.Rules(),  # noqa: B008 - frozen dataclass
) -> tuple[compare.Comparison, dict[str, Path]]:
    """Compare two run directories and write the three outputs."""
    pricing = cost.load_pricing(pricing_path)
    baseline, missing_b = load_run_data(baseline_dir)
    current, missing_c = load_run_data(current_dir)
    c = compare.compare_runs(baseline, current, pricing, rules)
    page = render_html(c, overlay_figures(c, baseline, current), baseline_dir, current_dir,
                       missing_b + missing_c)
    return c, write_outputs(out_dir, page, compare.markdown(c), comparison_json(c))


def main(args: argparse.Namespace) -> int:
    if args.save_baseline is not None:
        if len(args.runs) != 1:
            raise ConfigError("--save-baseline NAME takes exactly one RUN directory")
        run_dir = resolve_run(args.runs[0], args.baselines_dir)
        target = save_baseline(run_dir, args.save_baseline, args.baselines_dir)
        print(f"saved baseline {args.save_baseline}: {target} "
              f"({len(list(target.iterdir()))} files; commit it to keep it)")
        return 0
    if len(args.runs) != 2:
        raise ConfigError("compare takes BASELINE and CURRENT (run directories or baseline "
                          f"names), got {len(args.runs)} argument(s)")
    rules = compare.Rules(confidence=args.confidence, relative_floor=args.relative_floor)
    baseline_dir = resolve_run(args.runs[0], args.baselines_dir)
    current_dir = resolve_run(args.runs[1], args.baselines_dir)
    out_dir = args.out if args.out is not None else current_dir / "compare"
    c, paths = run_compare(baseline_dir, current_dir, out_dir, pricing_path=args.pricing,
                           rules=rules)
    print(f"compare {c.baseline_id} -> {c.current_id}: {c.verdict.value.upper()}")
    for line in c.regressions:
        print(f"  regressed: {line}")
    print(f"wrote {paths['html']}, {paths['markdown']}, {paths['json']}")
    if args.fail_on_regression and c.regressions:
        return 1
    return 0
