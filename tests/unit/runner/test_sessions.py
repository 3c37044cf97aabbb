"""The session factory's pools and its check of the audio fixtures before any load."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voiceload.errors import FixtureError
from voiceload.fixtures import Manifest, load_manifest
from voiceload.runner.options import RunSettings
from voiceload.runner.sessions import Pools, SessionFactory, build_pools, check_fixtures
from voiceload.targets import Endpoint, Target

TARGET = Target("emulator", Endpoint("ws://127.0.0.1:1/flux"), Endpoint("ws://127.0.0.1:1/aura"),
                is_real=False)  # fmt: skip


@pytest.fixture
def manifest(tmp_path: Path, repo_root: Path) -> Manifest:
    """A private copy of the shipped fixtures (tests may damage it)."""
    shutil.copytree(repo_root / "fixtures", tmp_path / "fixtures")
    return load_manifest(tmp_path / "fixtures" / "audio" / "manifest.toml")


def _flux_fixture(pools: Pools, name: str = "arctic_a0009") -> Path:
    return next(f.path for f in pools.flux if f.name == name)


def test_sound_fixtures_pass_and_are_prepared_at_the_run_rate(manifest: Manifest) -> None:
    pools = build_pools(manifest, [])
    settings = RunSettings(frame_ms=40, sample_rate=8000)
    factory = SessionFactory(settings, TARGET, pools)
    fixture = pools.flux[0]
    frames = factory._frames(fixture)
    assert {len(f) for f in frames} == {8000 * 40 // 1000 * 2}  # 40 ms of linear16 at 8 kHz


def test_an_edited_fixture_is_refused_before_load(manifest: Manifest) -> None:
    pools = build_pools(manifest, [])
    path = _flux_fixture(pools)
    samples, rate = sf.read(path, dtype="int16")
    samples[len(samples) // 2] ^= 1  # one sample, one bit: same length, different audio
    sf.write(path, samples, rate, subtype="PCM_16")
    with pytest.raises(FixtureError) as exc:
        SessionFactory(RunSettings(), TARGET, pools)
    message = str(exc.value)
    assert "'arctic_a0009'" in message and "does not match the manifest" in message
    assert "\n" not in message


def test_a_corrupt_fixture_is_refused_before_load(manifest: Manifest) -> None:
    pools = build_pools(manifest, [])
    _flux_fixture(pools).write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    with pytest.raises(FixtureError) as exc:
        SessionFactory(RunSettings(), TARGET, pools)
    assert "'arctic_a0009'" in str(exc.value) and "\n" not in str(exc.value)


def test_a_missing_fixture_file_is_refused_before_load(manifest: Manifest) -> None:
    pools = build_pools(manifest, [])
    _flux_fixture(pools).unlink()
    with pytest.raises(FixtureError, match=r"'arctic_a0009'.*does not exist"):
        check_fixtures(pools, ["flux"], sample_rate=16_000, frame_ms=80)


def test_only_the_pools_of_user_types_that_run_are_checked(manifest: Manifest) -> None:
    pools = build_pools(manifest, [])
    _flux_fixture(pools).write_bytes(b"garbage")
    check_fixtures(pools, ["aura"], sample_rate=16_000, frame_ms=80)  # texts only: fine
    with pytest.raises(FixtureError):
        check_fixtures(pools, ["agent", "flux"], sample_rate=16_000, frame_ms=80)


def test_a_conversation_fixture_is_checked_for_agent_users(manifest: Manifest) -> None:
    pools = build_pools(manifest, [])
    assert pools.agent, "the shipped fixtures include a conversation"
    conversation = pools.agent[0]
    data, rate = sf.read(conversation.path, dtype="int16")
    sf.write(conversation.path, np.zeros_like(data), rate, subtype="PCM_16")  # silenced
    with pytest.raises(FixtureError, match=f"'{conversation.name}'"):
        check_fixtures(pools, ["agent"], sample_rate=16_000, frame_ms=80)


def test_a_fixture_is_prepared_once_per_factory_not_per_session(
    manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting a session reuses the frames looked up for that fixture before (no stat and
    realpath of the audio file for each of the ~50 sessions a worker starts per second)."""
    import random

    from voiceload.runner import sessions

    pools = build_pools(manifest, ["arctic_a0009", "command_lights"])
    factory = SessionFactory(RunSettings(), TARGET, pools, ["flux"])
    calls: list[str] = []
    real_prepare = sessions.prepare

    def counting_prepare(path: Path | str, **kwargs: int) -> object:
        calls.append(Path(path).name)
        return real_prepare(path, **kwargs)

    monkeypatch.setattr(sessions, "prepare", counting_prepare)

    class NoSink:
        def record(self, metric: str, value_us: int) -> None:
            pass

    rng = random.Random(3)
    drivers = [factory.flux(NoSink(), rng) for _ in range(40)]
    assert {d.result.fixture for d in drivers} == {"arctic_a0009", "command_lights"}
    assert sorted(calls) == ["arctic_a0009.wav", "command_lights.wav"]  # once each
    by_name = {d.result.fixture: d.frames for d in drivers}
    for driver in drivers:
        assert driver.frames is by_name[driver.result.fixture]
        assert len(driver.frames[0]) == 16_000 * 80 // 1000 * 2


@pytest.mark.parametrize(("encoding", "rate"), [(None, 24_000), ("linear16", 24_000),
                                                ("mulaw", 8_000), ("alaw", 8_000)])  # fmt: skip
def test_aura_sessions_time_audio_in_the_format_the_url_asks_for(
    manifest: Manifest, encoding: str | None, rate: int
) -> None:
    factory = SessionFactory(RunSettings(aura_encoding=encoding), TARGET,
                             build_pools(manifest, []), ["aura"])  # fmt: skip
    session = factory.aura(sink=None, rng=random.Random(1))  # type: ignore[arg-type]
    assert (session.options.encoding, session.options.sample_rate_hz) == (encoding or "linear16",
                                                                          rate)  # fmt: skip
