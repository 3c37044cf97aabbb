"""voiceload.runner.locust_compat: the Locust version bound, and the one place of its internals."""

from __future__ import annotations

import re
from pathlib import Path

import locust
import pytest

from voiceload.errors import ConfigError
from voiceload.runner import locust_compat

SRC = Path(locust_compat.__file__).resolve().parents[1]


def test_the_installed_locust_is_supported() -> None:
    locust_compat.check_version(locust.__version__)  # the import itself already checked it


@pytest.mark.parametrize("version", ["2.39.1", "3.0.0", "1.6"])
def test_a_release_outside_the_range_is_refused_in_one_line(version: str) -> None:
    with pytest.raises(ConfigError, match=rf"locust {re.escape(version)} is not supported") as exc:
        locust_compat.check_version(version)
    assert "\n" not in str(exc.value) and ">=2.40,<3.0" in str(exc.value)


def test_parse_version() -> None:
    assert locust_compat.parse_version("2.47.0") == (2, 47)
    assert locust_compat.parse_version("2.41rc1") == (2, 41)


def test_only_the_compat_module_imports_locust_or_touches_its_internals() -> None:
    internals = re.compile(
        r"^\s*(from|import) locust\b|\.clients\.|runner\.greenlet|update_state\(|"
        r"\.start_worker\b|\.process_exit_code|send_message\(\"(stats|quit)\"|runner\.client_id"
    )
    offenders = [
        f"{p.relative_to(SRC)}:{n}"
        for p in SRC.rglob("*.py")
        if p.name != "locust_compat.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if internals.search(line)
    ]
    assert offenders == []
