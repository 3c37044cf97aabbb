"""`make fixtures` reproduces the committed fixtures byte for byte (needs espeak-ng and sox)."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from voiceload.fixtures import load_manifest

REPO = Path(__file__).resolve().parents[2]


def _tool_versions() -> dict[str, str]:
    espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    sox = subprocess.run(["sox", "--version"], capture_output=True, text=True, check=True)
    return {
        "espeak_ng": espeak.stdout.split("text-to-speech:")[1].split()[0],
        "sox": sox.stdout.strip().split()[-1],
    }


@pytest.mark.slow
def test_regeneration_is_byte_for_byte(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are not installed (apt-get install espeak-ng sox)")
    recorded = load_manifest(REPO / "fixtures" / "audio" / "manifest.toml").generator
    if _tool_versions() != recorded:
        pytest.skip(f"fixtures were made with {recorded}, this machine has {_tool_versions()}")
    out = tmp_path / "fixtures"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_fixtures.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    for sub in ("audio", "text"):
        made = sorted(p.name for p in (out / sub).iterdir())
        assert set(made) <= {p.name for p in (REPO / "fixtures" / sub).iterdir()}
        exact = [name for name in made if name != "manifest.toml"]
        _, mismatch, errors = filecmp.cmpfiles(
            REPO / "fixtures" / sub, out / sub, exact, shallow=False
        )
        assert (mismatch, errors) == ([], []), "run `make fixtures` and commit the result"
    # the manifest too, byte for byte, unless recordings were added with `fixtures add`
    committed = REPO / "fixtures" / "audio" / "manifest.toml"
    regenerated = load_manifest(out / "audio" / "manifest.toml")
    if load_manifest(committed).names == regenerated.names:
        assert committed.read_bytes() == regenerated.path.read_bytes()
    else:
        for fixture in regenerated.fixtures:
            kept = load_manifest(committed).get(fixture.name)
            assert (kept.sha256, kept.turns) == (fixture.sha256, fixture.turns)
