"""Open report.html in headless Chromium with networking disabled.

Checks: the page loads without console errors, every figure is present and drawn (inline SVGs
with a non-zero rendered size; any <img> decoded), the verdict boxes say what summary.json says,
and a screenshot is saved under the test's tmp dir. Skipped only when no ``chromium`` binary is
installed (Debian: ``apt-get install -y chromium``; CI installs it).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from voiceload import slo
from voiceload.cli import report as report_cli

pytestmark = pytest.mark.browser

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "run_golden"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HANG_GUARD_S = 300  # not a speed limit: only stops a hung browser from hanging the suite

# A page in the same directory frames the report and measures what the browser actually drew
# (the report itself runs no script: its Content-Security-Policy forbids it).
PROBE = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="f" src="report.html" style="width:1100px;height:900px"></iframe>
<script>
document.getElementById('f').addEventListener('load', function () {
  var d = this.contentDocument, out = {svgs: [], imgs: []};
  d.querySelectorAll('figure svg').forEach(function (s) {
    var r = s.getBoundingClientRect();
    out.svgs.push({id: s.id, w: r.width, h: r.height, paths: s.querySelectorAll('path').length});
  });
  d.querySelectorAll('img').forEach(function (i) {
    out.imgs.push({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight});
  });
  out.slo = d.getElementById('slo-verdict').textContent.trim();
  out.validity = d.getElementById('validity-verdict').textContent.trim();
  document.getElementById('result').textContent = JSON.stringify(out);
});
</script></body></html>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True,
                          timeout=HANG_GUARD_S, check=False)


def console_errors(stderr: str) -> list[str]:
    """Lines where Chromium logged a page console message or a failed resource load."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line or "Failed to load resource" in line
            or "Uncaught" in line]


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH (install with: apt-get install -y chromium)")
    run_dir = tmp_path / "run"
    shutil.copytree(GOLDEN, run_dir)
    report_cli.render_run(run_dir)
    return run_dir


def test_console_error_detection_is_not_vacuous(tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH (install with: apt-get install -y chromium)")
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("boom")</script>'
                   '<img src="http://example.invalid/x.png"></body></html>')
    proc = chromium("--dump-dom", bad.as_uri(), profile=tmp_path / "profile")
    assert console_errors(proc.stderr)


def test_report_loads_cleanly_with_every_figure_drawn(rendered: Path, tmp_path: Path) -> None:
    proc = chromium("--dump-dom", (rendered / "report.html").as_uri(),
                    profile=tmp_path / "p1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert console_errors(proc.stderr) == []
    dom = proc.stdout
    assert dom.count("<svg") == 2
    assert 'id="fig-percentiles-svg"' in dom and 'id="fig-over-time-svg"' in dom

    probe = rendered / "probe.html"
    probe.write_text(PROBE)
    proc = chromium("--allow-file-access-from-files", "--virtual-time-budget=10000",
                    "--dump-dom", probe.as_uri(), profile=tmp_path / "p2")
    match = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert match, proc.stdout[-2000:]
    drawn = json.loads(html.unescape(match.group(1)))
    assert [s["id"] for s in drawn["svgs"]] == ["fig-percentiles-svg", "fig-over-time-svg"]
    for s in drawn["svgs"]:
        assert s["w"] > 300 and s["h"] > 150 and s["paths"] > 10, s
    for i in drawn["imgs"]:
        assert i["complete"] and i["w"] > 0 and i["h"] > 0, i

    summary = json.loads((rendered / "summary.json").read_text())
    results = [slo.SloResult(**r) for r in summary["slo"]]
    assert drawn["slo"] == f"SLO {slo.verdict(results)}"
    assert drawn["validity"] == ("Run VALID" if summary["validity"]["valid"] else "Run INVALID")


def test_screenshot(rendered: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    proc = chromium("--window-size=1100,2400", f"--screenshot={shot}",
                    (rendered / "report.html").as_uri(), profile=tmp_path / "p3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, 1100)
    assert pixels.std() > 0.05  # not a blank page
