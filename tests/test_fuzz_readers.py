"""Property: truncated or byte-flipped real recordings either decode to valid events or raise
one EventFileError: never another exception, never a hang, never an out-of-sensor event."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvsapp.errors import EventFileError
from dvsapp.events.detect import open_reader

SAMPLES = [
    "MovingDarkBox.aedat",
    "sample.aedat4",
    "evt3_sample.raw",
    "evt2_sample.raw",
    "sample_ncars.dat",
    "nmnist/Train/0/00002.bin",  # headerless: detected by the .bin name and plausible content
    "ncaltech101/Faces_easy/image_0001.bin",
]
#: Cap on the bytes each example reads, so the suite stays quick.
MAX_BYTES = 400_000


def check_decodes_or_fails_cleanly(path: Path) -> None:
    try:
        with open_reader(path) as reader:
            w, h, _ = reader.sensor_size
            last = None
            for packet in reader.packets(max_events=50_000):
                assert packet.dtype.names == ("x", "y", "t", "p")
                assert packet["x"].min() >= 0 and packet["x"].max() < w
                assert packet["y"].min() >= 0 and packet["y"].max() < h
                assert last is None or packet["t"][0] >= last
                last = packet["t"][-1]
    except EventFileError as e:
        msg = str(e)
        assert str(path) in msg and "\n" not in msg


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", SAMPLES)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_samples(name: str, samples_dir: Path, tmp_path: Path, data: st.DataObject) -> None:
    raw = (samples_dir / name).read_bytes()[:MAX_BYTES]
    cut = data.draw(st.integers(0, len(raw)), label="truncate_at")
    mutated = bytearray(raw[:cut])
    flips = data.draw(st.lists(st.integers(0, max(0, cut - 1)), max_size=8), label="flip_at")
    for pos in flips:
        if mutated:
            mutated[pos] ^= data.draw(st.integers(1, 255), label="xor")
    path = tmp_path / f"mutated-{Path(name).name}"
    path.write_bytes(bytes(mutated))
    check_decodes_or_fails_cleanly(path)
