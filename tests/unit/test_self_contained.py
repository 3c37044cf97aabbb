"""The repository is self-contained: nothing it ships points outside it (issue 17).

Code, tests and docs cite the project's own notes (docs/METRICS.md, docs/PROTOCOLS.md,
docs/MEASUREMENTS.md) and its own test data (tests/data/); a cited section must exist.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Built from parts so this file does not match its own search.
OUTSIDE = re.compile(r"\.\./" + "shared" + r"\b|/work/" + "shared")
# Generated or tool-owned directories that are not part of a clone.
SKIP_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
# Data that is not text (or not ours to word): audio and histograms.
SKIP_SUFFIXES = {".wav", ".flac", ".hlog", ".png", ".pyc", ".lab"}


def _repository_files() -> list[Path]:
    """The tracked files (``git ls-files``), or every file of the tree when this is not a git
    checkout (a source archive); generated directories are left out either way."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
        ).stdout
        paths = [REPO / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in REPO.rglob("*") if p.is_file()]
    return [
        p
        for p in paths
        if p.is_file()
        and not SKIP_DIRS.intersection(p.relative_to(REPO).parts)
        and not any(part.endswith(".egg-info") for part in p.relative_to(REPO).parts)
        and p.parts[len(REPO.parts)] != "reports"
        and p.suffix not in SKIP_SUFFIXES
    ]


def test_no_file_points_outside_the_repository() -> None:
    files = _repository_files()
    assert len(files) > 100  # the search really ran over the tree
    offenders = [
        f"{p.relative_to(REPO)}:{n}"
        for p in files
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_the_search_would_catch_a_reference() -> None:
    assert OUTSIDE.search("see ``" + "../" + "shared/design/metrics.md``")
    assert not OUTSIDE.search("the shared frame cache")


def _headings(doc: Path) -> set[str]:
    """Section numbers of ``## 3.`` / ``### 3.5`` headings: {"3", "3.5"}."""
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", doc.read_text(), flags=re.MULTILINE))


@pytest.mark.parametrize("doc", ["PROTOCOLS.md", "MEASUREMENTS.md"])
def test_every_cited_section_exists(doc: str) -> None:
    sections = _headings(REPO / "docs" / doc)
    cite = re.compile(re.escape(doc) + r"(?:``)?,? ((?:§\d+(?:\.\d+)?(?:[-,]? ?|, | and ))+)")
    cited: dict[str, list[str]] = {}
    for p in _repository_files():
        if p.suffix not in {".py", ".md", ".toml", ".j2"}:
            continue
        for match in cite.finditer(p.read_text(errors="replace")):
            for number in re.findall(r"§(\d+(?:\.\d+)?)", match.group(1)):
                cited.setdefault(number, []).append(str(p.relative_to(REPO)))
    assert cited, f"no citation of {doc} found: the pattern is wrong"
    missing = {n: where for n, where in cited.items() if n not in sections}
    assert missing == {}


def test_test_data_needed_by_the_vad_tests_is_in_the_repository() -> None:
    arctic = REPO / "tests" / "data" / "cmu_arctic"
    for name in ("arctic_a0009_phone.lab", "COPYING", "README.md", "SHA256SUMS"):
        assert (arctic / name).is_file(), name
