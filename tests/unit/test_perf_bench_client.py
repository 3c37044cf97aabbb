"""scripts/bench_emulator.py's raw load client: valid masked frames, and real Flux streams."""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

import bench_emulator
from voiceload.emulator.server import BackgroundEmulator


@pytest.mark.parametrize("size", [0, 22, 125, 126, 2560, 65535, 65536])
def test_masked_frame_is_what_a_server_parses(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    reader = StreamReader()
    reader.feed_data(bench_emulator.masked_frame(payload, 0x2))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True, max_size=None, extensions=[])
    with pytest.raises(StopIteration) as done:
        next(parser)
        while True:
            next(parser)
    frame = done.value.value
    assert frame.opcode is Opcode.BINARY and frame.fin and frame.data == payload


def test_raw_client_streams_flux_frames_the_emulator_answers() -> None:
    # 3 streams for ~1.5 s of 80 ms frames: every stream connects, frames go out on schedule,
    # the emulator's Update messages come back and are timed, and nothing fails
    with BackgroundEmulator() as emu:
        url = emu.url + bench_emulator.PATH
        stats = asyncio.run(bench_emulator.run_raw_client(url, 3, ramp_s=0.2, duration_s=1.5))
        assert emu.app is not None
    assert stats.errors == 0
    assert stats.frames >= 3 * 15
    assert stats.send_lag_us and stats.resp_us  # steady-window samples in both directions
    assert stats.backlogged == 0
