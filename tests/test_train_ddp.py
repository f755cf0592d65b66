"""DistributedDataParallel for real: ``torchrun --nproc_per_node 2`` on the CPU (gloo)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(1)
    import test_train as tt
    import dvsapp.train.datasets as ds
    ds._synth_meta = lambda: (list(tt.CLASSES), (128, 128, 2))
    from pathlib import Path
    from dvsapp.train.loop import train

    out = Path({out!r})
    cfg = tt.tiny_config(out, epochs=1, logdir=str(out / "run"), out=str(out / "m.safetensors"))
    seen = []
    orig = ds.SynthGestures.__getitem__
    def spy(self, i):
        seen.append(i)
        return orig(self, i)
    ds.SynthGestures.__getitem__ = spy
    r = train(cfg, generator=tt.fake_gesture)
    rank = os.environ["RANK"]
    line = (f"rank {{rank}} of {{os.environ['WORLD_SIZE']}} done: history={{len(r.history)}} "
            f"out={{r.out}} items={{len(seen)}}\\n")
    # one write(2) per line: print() under PYTHONUNBUFFERED writes the text and its newline
    # separately, and the other rank's line could land between the two
    os.write(1, line.encode())
    from dvsapp.train.distributed import end_process, env_world
    end_process(env_world())  # as `dvsapp train` ends (torch's DDP teardown can abort)
    os.write(1, b"not reached\\n")
    """
)


def _torchrun() -> str | None:
    near = Path(sys.executable).with_name("torchrun")
    return str(near) if near.is_file() else shutil.which("torchrun")


def test_ddp_two_cpu_processes(tmp_path):
    torchrun = _torchrun()
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(tests=str(TESTS), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("rank ")]
    assert all(ln.count(" done: ") == 1 for ln in lines), proc.stdout
    assert len(lines) == 2, log[-3000:]
    assert "not reached" not in proc.stdout
    by_rank = {ln.split()[1]: ln for ln in lines}
    # rank 0 validated, logged and saved; rank 1 only trained its half of the data
    assert "history=1" in by_rank["0"] and "m.safetensors" in by_rank["0"]
    assert "history=0" in by_rank["1"] and "out=None" in by_rank["1"]
    # 32 training clips: 2 batches of 8 per rank; rank 0 also reads the 16 val clips
    assert "items=16 " in by_rank["1"] + " " and "items=32" in by_rank["0"]
    from dvsapp.snn.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path / "m.safetensors")
    assert ck.time_steps == 4 and "val_accuracy" in ck.metrics
    assert (tmp_path / "run" / "last.safetensors").is_file()
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))
