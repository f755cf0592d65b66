"""Training data: every sample is ``(frames [T, C, H, W] float32, class index)``, the frames made
by OUR binner (:func:`dvsapp.binning.bin_events`) with the model's :class:`BinningConfig` (the
one stored in the checkpoint), so training sees exactly the bins that ``dvsapp run`` streams.

A window is ``T`` bins of ``binning.time_window_us`` each. Training crops a window at a random
offset (augmentation); evaluation at a fixed one. The random offsets are drawn from a generator
seeded by ``(seed, epoch, index)`` (:meth:`set_epoch`), so a run is reproducible, the same with
any number of loader workers, and a resumed run sees the same crops as an uninterrupted one.

Sources (:func:`make_datasets` parses the ``--data`` spec):

``synth``
    :class:`SynthGestures`: clips from the synthetic gesture generator
    (``dvsapp.synth.generate.gesture_events(c, seed)``), binned once and cached. Seeds are
    disjoint per split: clip ``k`` of every class ``c`` has seed ``base + k``, base 0 (train),
    1_000_000 (val) and 2_000_000 (test), so ``n_per_class <= 1_000_000``. The generator
    draws the scene ("subject") from the seed and the motion from (seed, c): clip k of all
    classes is one subject doing every gesture, as in DVS128 Gesture, so the scene carries no
    class information.
``synth:DIR``
    recordings written by ``dvsapp synth`` (any format our readers open, with labels), cut into
    windows by :class:`RecordingWindows`. ``DIR/train`` and ``DIR/val`` (or ``DIR/test``)
    when present; otherwise the files sorted by name, every 5th one (index 4, 9, ...) for val.
``dvsgesture:ROOT``
    the original DVS128 Gesture folder (AEDAT 3.1 + ``_labels.csv``):
    ``trials_to_train.txt`` for training, ``trials_to_test.txt`` for validation (the
    official test split; there is no separate val split). Each label segment is cut into
    windows.
``cifar10dvs:ROOT``
    the original CIFAR10-DVS AEDAT 2.0 files in one folder per class. Per class, the files
    sorted by the number in their name (then by name): the first 90% train, the last 10% val
    (at least one). One window per recording.
``tonic-dvsgesture:ROOT`` / ``tonic-cifar10dvs:ROOT``
    tonic 1.7.0's ``DVSGesture`` / ``CIFAR10DVS`` already downloaded under ROOT (we never
    download: a missing download is a one-line error). tonic's DVSGesture multiplies its
    millisecond ``.npy`` timestamps by 1000 itself and orders the fields x, y, p, t; CIFAR10DVS
    gives t, x, y, p as uint64/uint16. Both are converted to our event dtype (t in us).
    CIFAR10DVS has no split: the 90/10 rule above, over tonic's per-class order.

With ``binning.denoise_us`` set, the denoising filter runs over each whole recording (tonic
sample, synthetic clip) before it is cut into windows, as ``dvsapp run`` filters the whole
stream; the windows are then binned without it (:func:`denoise_whole`).

Frames are stored or computed per item: :class:`SynthGestures` keeps the binned clips as uint8
counts (saturating at 255 per pixel and bin; with ``binning.clip`` set lower it changes
nothing); the recording datasets keep the events in memory (or read them per item, tonic) and
bin each window when it is asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dvsapp.binning import BinningConfig, Denoiser, bin_events
from dvsapp.errors import ConfigError, DvsappError
from dvsapp.events.types import DVS_GESTURE_CLASSES, EVENT_DTYPE

#: Seed bases of the synthetic splits (see the module docstring).
SPLIT_SEED_BASE = {"train": 0, "val": 1_000_000, "test": 2_000_000}
#: Clips per class at most (the seeds of one split: base + k, k < SEEDS_PER_SPLIT).
SEEDS_PER_SPLIT = 1_000_000
#: Saturation of the cached synthetic frames (uint8).
CACHE_MAX = 255
#: Version of the synthetic cache layout (part of the cache key).
CACHE_VERSION = 1
DATA_KINDS = (
    "synth",
    "dvsgesture",
    "cifar10dvs",
    "tonic-dvsgesture",
    "tonic-cifar10dvs",
)

Generator = Callable[..., np.ndarray]


def synth_seed(split: str, class_index: int, k: int) -> int:
    """The generator seed of clip ``k`` of class ``class_index`` in ``split`` (``base + k``:
    the class goes to the generator separately)."""
    if split not in SPLIT_SEED_BASE:
        raise ConfigError(f"synthetic data: split must be one of {sorted(SPLIT_SEED_BASE)}")
    if not 0 <= k < SEEDS_PER_SPLIT:
        raise ConfigError(f"synthetic data: at most {SEEDS_PER_SPLIT} clips per class")
    return SPLIT_SEED_BASE[split] + k


def window_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one item's random crop in one epoch."""
    return np.random.default_rng([seed & 0xFFFFFFFF, epoch, index])


def as_events(arr: np.ndarray) -> np.ndarray:
    """Any structured array with fields x, y, t, p as our event dtype, sorted by t."""
    out = np.empty(len(arr), dtype=EVENT_DTYPE)
    for name in ("x", "y", "t", "p"):
        out[name] = arr[name]
    if len(out) > 1 and np.any(np.diff(out["t"]) < 0):
        out = out[np.argsort(out["t"], kind="stable")]
    return out


def _pad_or_cut(frames: np.ndarray, steps: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Exactly ``steps`` frames: the first ones, zero frames appended when short."""
    if len(frames) >= steps:
        return frames[:steps]
    pad = np.zeros((steps - len(frames), *shape), dtype=frames.dtype)
    return np.concatenate([frames, pad]) if len(frames) else pad


def denoise_whole(events: np.ndarray, binning: BinningConfig) -> tuple[np.ndarray, BinningConfig]:
    """A whole recording's events through the binning's denoising filter (when it has one),
    and the binning without it, to cut windows from the filtered stream: a window then sees
    the events the stream keeps, with the history before the window's start."""
    if binning.denoise_us is None:
        return events, binning
    kept = Denoiser(binning.sensor_size, binning.denoise_us)(events)
    return kept, dataclasses.replace(binning, denoise_us=None)


def bin_window(events: np.ndarray, binning: BinningConfig, steps: int, t0_us: int) -> np.ndarray:
    """``[steps, C, H, W]`` frames of the events in ``[t0, t0 + steps * bin)`` on a grid from
    ``t0`` (numpy, the binning's dtype); windows with fewer bins are padded with zeros."""
    assert binning.time_window_us is not None
    t1 = t0_us + steps * binning.time_window_us
    t = events["t"]
    lo, hi = np.searchsorted(t, t0_us, "left"), np.searchsorted(t, t1, "left")
    frames = bin_events(events[lo:hi], binning, t0_us=t0_us, max_empty_frames=None).data
    return _pad_or_cut(np.asarray(frames), steps, binning.frame_shape)


class WindowDataset(Dataset):
    """What every training dataset here offers besides ``__getitem__``."""

    class_names: list[str]
    sensor_size: tuple[int, int, int]
    binning: BinningConfig
    time_steps: int
    random_crop: bool
    seed: int = 0
    epoch: int = 0
    description: str = ""

    def set_epoch(self, epoch: int) -> None:
        """Draw the random crops of ``epoch`` (call before each epoch)."""
        self.epoch = int(epoch)

    def targets(self) -> list[int]:
        raise NotImplementedError

    @property
    def window_us(self) -> int:
        assert self.binning.time_window_us is not None
        return self.time_steps * self.binning.time_window_us

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))


def _check_time_binning(binning: BinningConfig) -> None:
    if binning.mode != "time":
        raise ConfigError("training: only time binning ('time' mode) is supported")


# -- synthetic gestures ---------------------------------------------------------------------
def _default_generator() -> Generator:
    try:
        from dvsapp.synth.generate import gesture_events
    except ImportError as e:
        raise ConfigError(f"synthetic data: dvsapp.synth is unavailable: {e}") from None
    return gesture_events


def _synth_meta() -> tuple[list[str], tuple[int, int, int]]:
    """(class names, sensor size) of dvsapp.synth, with DVS-Gesture's as the fallback."""
    try:
        from dvsapp.synth import generate
    except ImportError:
        return list(DVS_GESTURE_CLASSES), (128, 128, 2)
    names = next(
        (
            getattr(generate, n)
            for n in ("CLASS_NAMES", "CLASSES", "GESTURE_CLASSES")
            if hasattr(generate, n)
        ),
        DVS_GESTURE_CLASSES,
    )
    return [str(c) for c in names], tuple(getattr(generate, "SENSOR_SIZE", (128, 128, 2)))


def _clip_frames(job: tuple[Generator, int, int, float, BinningConfig, int]) -> np.ndarray:
    """Generate one clip and bin it into ``n_bins`` uint8 frames (runs in a pool worker)."""
    generator, class_index, seed, clip_s, binning, n_bins = job
    events = as_events(generator(class_index, seed, clip_s, t0_us=0))
    assert binning.time_window_us is not None
    frames = bin_events(events, binning, t0_us=0, max_empty_frames=None).data
    frames = _pad_or_cut(np.asarray(frames), n_bins, binning.frame_shape)
    return np.minimum(frames, CACHE_MAX).astype(np.uint8)


def _run_jobs(jobs: list, workers: int, desc: str, fn: Callable[[Any], Any] = _clip_frames) -> list:
    from tqdm import tqdm

    if workers <= 1 or len(jobs) < 8:
        return [fn(j) for j in tqdm(jobs, desc=desc, unit="clip", leave=False)]
    import multiprocessing as mp

    # fork where there is one: the workers only run numpy (no torch op, so torch's thread
    # pools are not involved) and need not re-import the caller's __main__ (a script without
    # a main guard, stdin); elsewhere spawn (the generator must then be importable).
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(workers) as pool:
        it = pool.imap(fn, jobs, chunksize=max(1, len(jobs) // (workers * 8)))
        return list(tqdm(it, total=len(jobs), desc=desc, unit="clip", leave=False))


def _synth_cache_key(
    split: str,
    n_per_class: int,
    binning: BinningConfig,
    time_steps: int,
    clip_s: float,
    class_names: Sequence[str],
    generator: Generator,
) -> str:
    """The cache key of a :class:`SynthGestures` set (binning, T, clip length, seeds,
    generator)."""
    base = SPLIT_SEED_BASE[split]
    key = {
        "version": CACHE_VERSION,
        "binning": binning.to_dict(),
        "time_steps": int(time_steps),
        "clip_s": float(clip_s),
        "split": split,
        "n_per_class": int(n_per_class),
        "classes": list(class_names),
        "seeds": [base, base + int(n_per_class) - 1, len(class_names) * int(n_per_class)],
        "generator": f"{getattr(generator, '__module__', '')}."
        f"{getattr(generator, '__qualname__', '')}",
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _cache_root(cache_dir: Any) -> Path:
    return Path(cache_dir or Path.home() / ".cache" / "dvsapp" / "synth").expanduser()


def _read_cache(path: Path, lead: tuple[int, int]) -> np.ndarray | None:
    """The cached frames at ``path`` when they exist and have ``lead`` as their first two
    dimensions (clips, bins); None otherwise (a damaged cache is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            frames = z["frames"]
    except (OSError, ValueError, KeyError):
        return None
    return frames if frames.shape[:2] == lead else None


def _write_cache(path: Path, frames: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, frames=frames)
        os.replace(tmp, path)
    except OSError as e:  # an unwritable cache is not fatal
        import warnings

        warnings.warn(f"synthetic data: cannot write the cache {path}: {e}", stacklevel=3)


def _clip_frames_multi(
    job: tuple[Generator, int, int, float, tuple[tuple[BinningConfig, int], ...]],
) -> list[np.ndarray]:
    """One clip generated once and binned with each (binning, bins) (a pool worker)."""
    generator, class_index, seed, clip_s, binnings = job
    events = as_events(generator(class_index, seed, clip_s, t0_us=0))
    out = []
    for binning, n_bins in binnings:
        frames = bin_events(events, binning, t0_us=0, max_empty_frames=None).data
        frames = _pad_or_cut(np.asarray(frames), n_bins, binning.frame_shape)
        out.append(np.minimum(frames, CACHE_MAX).astype(np.uint8))
    return out


def prebuild_synth_caches(
    split: str,
    targets: Sequence[tuple[BinningConfig, int]],
    time_steps: int,
    *,
    clip_s: float = 2.0,
    cache_dir: str | os.PathLike[str] | None = None,
    generator: Generator | None = None,
    class_names: Sequence[str] | None = None,
    workers: int | None = None,
) -> list[Path]:
    """Write the caches :class:`SynthGestures` reads for ``split`` at each (binning,
    n_per_class) of ``targets``, generating every clip ONCE for all of them (the clips of a
    smaller n are the first ones of a larger: seeds ``base + k``). Several models trained on
    the same synthetic data at different input sizes then pay for the generator once.
    Returns the cache paths; existing ones are kept."""
    gen = generator or _default_generator()
    names = list(class_names) if class_names is not None else _synth_meta()[0]
    root = _cache_root(cache_dir)
    todo: list[tuple[BinningConfig, int, int, Path]] = []
    paths = []
    for binning, n in targets:
        _check_time_binning(binning)
        assert binning.time_window_us is not None
        n_bins = -(-round(float(clip_s) * 1e6) // binning.time_window_us)
        key = _synth_cache_key(split, n, binning, time_steps, clip_s, names, gen)
        path = root / f"synth-{split}-{key}.npz"
        paths.append(path)
        if _read_cache(path, (len(names) * n, n_bins)) is None:
            todo.append((binning, int(n), n_bins, path))
    if not todo:
        return paths
    n_max = max(t[1] for t in todo)
    base = SPLIT_SEED_BASE[split]
    jobs, where = [], []
    for c in range(len(names)):
        for k in range(n_max):
            need = tuple((b, nb) for b, n, nb, _ in todo if k < n)
            uses = [i for i, t in enumerate(todo) if k < t[1]]
            jobs.append((gen, c, base + k, float(clip_s), need))
            where.append(uses)
    n_workers = (os.cpu_count() or 1) if workers is None else int(workers)
    results = _run_jobs(jobs, n_workers, f"synth {split} clips", _clip_frames_multi)
    for i, (_, n, _, path) in enumerate(todo):
        rows = [r[u.index(i)] for r, u in zip(results, where, strict=True) if i in u]
        assert len(rows) == len(names) * n
        _write_cache(path, np.stack(rows))
    return paths


class SynthGestures(WindowDataset):
    """Synthetic gesture clips (``n_per_class`` per class), binned with ``binning``.

    Each clip lasts ``clip_s`` seconds (longer than the window of ``time_steps`` bins);
    training takes a random ``time_steps``-bin crop, evaluation the crop in the middle. The
    binned clips are cached as uint8 in ``cache_dir/synth-<split>-<key>.npz`` (default
    ``~/.cache/dvsapp/synth``; ``cache_dir=False`` disables it); the key hashes the binning,
    T, clip length, seeds and generator. ``generator(class_index, seed, duration_s, t0_us=0)``
    returns the events (default: ``dvsapp.synth.generate.gesture_events``).
    """

    def __init__(
        self,
        split: str,
        n_per_class: int,
        binning: BinningConfig,
        time_steps: int,
        *,
        clip_s: float = 2.0,
        cache_dir: str | os.PathLike[str] | bool | None = None,
        random_crop: bool | None = None,
        generator: Generator | None = None,
        class_names: Sequence[str] | None = None,
        sensor_size: Sequence[int] | None = None,
        workers: int | None = None,
        seed: int = 0,
    ) -> None:
        _check_time_binning(binning)
        if n_per_class < 1:
            raise ConfigError(f"synthetic data: n_per_class must be >= 1, got {n_per_class}")
        if split not in SPLIT_SEED_BASE:
            raise ConfigError(f"synthetic data: split must be one of {sorted(SPLIT_SEED_BASE)}")
        default_names, default_sensor = _synth_meta()
        self.class_names = list(class_names) if class_names is not None else default_names
        self.sensor_size = tuple(sensor_size or default_sensor)  # type: ignore[assignment]
        self.split, self.n_per_class, self.clip_s = split, int(n_per_class), float(clip_s)
        self.binning, self.time_steps, self.seed = binning, int(time_steps), int(seed)
        self.random_crop = split == "train" if random_crop is None else bool(random_crop)
        self.generator = generator or _default_generator()
        self.n_bins = -(-round(self.clip_s * 1e6) // binning.time_window_us)  # ceil
        if self.n_bins < self.time_steps:
            raise ConfigError(
                f"synthetic data: a {clip_s} s clip holds {self.n_bins} bins of "
                f"{binning.time_window_us} us, fewer than T={time_steps}"
            )
        self.description = f"synth ({split}, {n_per_class}/class, {clip_s} s clips)"
        self.labels = np.repeat(np.arange(len(self.class_names)), self.n_per_class)
        self.seeds = [
            synth_seed(split, c, k)
            for c in range(len(self.class_names))
            for k in range(self.n_per_class)
        ]
        self.frames = self._load_or_generate(cache_dir, workers)

    def cache_key(self) -> str:
        return _synth_cache_key(
            self.split, self.n_per_class, self.binning, self.time_steps, self.clip_s,
            self.class_names, self.generator,
        )  # fmt: skip

    def _load_or_generate(self, cache_dir: Any, workers: int | None) -> np.ndarray:
        path = None
        if cache_dir is not False:
            path = _cache_root(cache_dir) / f"synth-{self.split}-{self.cache_key()}.npz"
            frames = _read_cache(path, (len(self.seeds), self.n_bins))
            if frames is not None:
                return frames
        jobs = [
            (self.generator, int(c), s, self.clip_s, self.binning, self.n_bins)
            for c, s in zip(self.labels, self.seeds, strict=True)
        ]
        n_workers = (os.cpu_count() or 1) if workers is None else int(workers)
        frames = np.stack(_run_jobs(jobs, n_workers, f"synth {self.split} clips"))
        if path is not None:
            _write_cache(path, frames)
        return frames

    def __len__(self) -> int:
        return len(self.seeds)

    def targets(self) -> list[int]:
        return [int(v) for v in self.labels]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        slack = self.n_bins - self.time_steps
        if self.random_crop:
            start = int(window_rng(self.seed, self.epoch, index).integers(0, slack + 1))
        else:
            start = slack // 2
        clip = self.frames[index, start : start + self.time_steps]
        if self.binning.clip is not None:
            clip = np.minimum(clip, self.binning.clip)
        if self.binning.binarize:
            clip = clip > 0
        return self._to_tensor(clip), int(self.labels[index])


# -- recordings: label segments cut into windows --------------------------------------------
@dataclass
class _Segment:
    events: np.ndarray  # the segment's events, sorted by t
    label: int
    t_start_us: int
    t_end_us: int
    binning: BinningConfig  # re-based on the recording's sensor


def _class_index(name: str, label: int, class_names: Sequence[str]) -> int | None:
    if name in class_names:
        return list(class_names).index(name)
    return label if 0 <= label < len(class_names) else None


class RecordingWindows(WindowDataset):
    """Labelled recordings (DVS-Gesture AEDAT 3.1 + labels CSV, our .npz / AEDAT4 with labels,
    CIFAR10-DVS files) cut into windows of ``time_steps`` bins inside each label segment.

    A segment of duration D holds ``max(1, D // window)`` windows; evaluation takes them
    back to back from the segment's start, training shifts each by the same random offset in
    ``[0, D - n * window]`` (a segment shorter than a window gives one zero-padded window).
    A segment's class is its name's index in ``class_names``, or its label index when the
    name is none of them; segments of unknown classes are skipped. Recordings on another
    sensor are binned at their sensor size and downsampled to the input (as ``dvsapp run``).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        binning: BinningConfig,
        time_steps: int,
        class_names: Sequence[str],
        *,
        random_crop: bool = False,
        seed: int = 0,
        one_window: bool = False,
        description: str = "",
    ) -> None:
        from tqdm import tqdm

        from dvsapp.binning import binning_for_recording
        from dvsapp.events.detect import open_reader

        _check_time_binning(binning)
        self.binning, self.time_steps, self.seed = binning, int(time_steps), int(seed)
        self.class_names = list(class_names)
        self.random_crop = bool(random_crop)
        self.description = description or f"{len(paths)} recordings"
        self.segments: list[_Segment] = []
        self.items: list[tuple[int, int]] = []  # (segment, window within it)
        sensor: tuple[int, int, int] | None = None
        for path in tqdm(list(paths), desc="reading recordings", unit="file", leave=False):
            reader = open_reader(path)
            with reader:
                events = as_events(reader.read_all())
                labels = list(reader.labels)
                sensor = sensor or tuple(reader.sensor_size)  # type: ignore[assignment]
                rebased = binning_for_recording(binning, reader.sensor_size, path)
            events, rebased = denoise_whole(events, rebased)
            if not labels:
                raise ConfigError(f"{os.fspath(path)}: no labels (cannot train on it)")
            for seg in labels:
                cls = _class_index(seg.name, seg.label, self.class_names)
                if cls is None:
                    continue
                t = events["t"]
                lo, hi = np.searchsorted(t, seg.t_start_us), np.searchsorted(t, seg.t_end_us)
                self.segments.append(
                    _Segment(events[lo:hi].copy(), cls, seg.t_start_us, seg.t_end_us, rebased)
                )
                n = 1 if one_window else max(1, (seg.t_end_us - seg.t_start_us) // self.window_us)
                self.items += [(len(self.segments) - 1, k) for k in range(n)]
        if not self.items:
            raise ConfigError(f"no labelled windows of known classes in {self.description}")
        self.sensor_size = sensor or (*binning.sensor_size, 2)  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.items)

    def targets(self) -> list[int]:
        return [self.segments[s].label for s, _ in self.items]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        s, k = self.items[index]
        seg = self.segments[s]
        duration = seg.t_end_us - seg.t_start_us
        n = max(1, duration // self.window_us)
        slack = max(0, duration - n * self.window_us)
        offset = 0
        if self.random_crop and slack:
            # the same offset for every window of a segment in an epoch: they never overlap
            offset = int(window_rng(self.seed, self.epoch, s).integers(0, slack + 1))
        t0 = seg.t_start_us + offset + k * self.window_us
        frames = bin_window(seg.events, seg.binning, self.time_steps, t0)
        return self._to_tensor(frames), seg.label


class TonicWindows(WindowDataset):
    """One window per sample of a tonic dataset (events read per item, converted to ours):
    from the first event in evaluation, at a random offset within the sample in training."""

    def __init__(
        self,
        tonic_dataset: Any,
        indices: Sequence[int],
        binning: BinningConfig,
        time_steps: int,
        class_names: Sequence[str],
        *,
        random_crop: bool = False,
        seed: int = 0,
        description: str = "",
    ) -> None:
        _check_time_binning(binning)
        self.dataset, self.indices = tonic_dataset, list(indices)
        self.binning, self.time_steps, self.seed = binning, int(time_steps), int(seed)
        self.class_names, self.random_crop = list(class_names), bool(random_crop)
        self.sensor_size = tuple(tonic_dataset.sensor_size)  # type: ignore[assignment]
        self.description = description

    def __len__(self) -> int:
        return len(self.indices)

    def targets(self) -> list[int]:
        return [int(self.dataset.targets[i]) for i in self.indices]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        raw, target = self.dataset[self.indices[index]]
        events, binning = denoise_whole(as_events(raw), self.binning)
        t0 = int(events["t"][0]) if len(events) else 0
        if self.random_crop and len(events):
            slack = max(0, int(events["t"][-1]) - t0 - self.window_us)
            t0 += int(window_rng(self.seed, self.epoch, index).integers(0, slack + 1))
        frames = bin_window(events, binning, self.time_steps, t0)
        return self._to_tensor(frames), int(target)


# -- --data specs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value: the kind, its folder (None for ``synth``), its classes and
    sensor size (known before any data is read, so the binning can be built)."""

    kind: str
    root: Path | None
    class_names: tuple[str, ...]
    sensor_size: tuple[int, int, int]

    @property
    def text(self) -> str:
        return self.kind if self.root is None else f"{self.kind}:{self.root}"


_NUMBER = re.compile(r"(\d+)")


def _natural_key(path: Path) -> tuple:
    nums = _NUMBER.findall(path.stem)
    return (int(nums[-1]) if nums else -1, path.name)


def _split_90_10(n: int) -> int:
    """How many of ``n`` files of a class go to training (the rest, at least one, to val)."""
    return n if n < 2 else min(n - 1, round(n * 0.9))


def _cifar10dvs_files(root: Path) -> dict[int, list[Path]]:
    from dvsapp.events.readers.aedat2 import CIFAR10_CLASSES

    out = {}
    for i, name in enumerate(CIFAR10_CLASSES):
        folder = root / name
        if folder.is_dir():
            files = sorted(folder.glob("*.aedat"), key=_natural_key)
            if files:
                out[i] = files
    return out


#: Recording suffixes in order of preference where one stem has several (``dvsapp synth
#: --format both`` writes .aedat and .aedat4; the AEDAT 3.1 file has its labels CSV).
_SUFFIXES = (".aedat", ".npz", ".aedat4", ".raw", ".dat", ".npy")


def _recording_files(folder: Path) -> list[Path]:
    """One file per recording stem (the preferred format), sorted by name."""
    best: dict[str, Path] = {}
    for p in folder.iterdir():
        suffix = p.suffix.lower()
        if not p.is_file() or suffix not in _SUFFIXES:
            continue
        old = best.get(p.stem)
        if old is None or _SUFFIXES.index(suffix) < _SUFFIXES.index(old.suffix.lower()):
            best[p.stem] = p
    return sorted(best.values())


def _synth_dir_split(root: Path) -> tuple[list[Path], list[Path]]:
    if (root / "train").is_dir():
        val_dir = root / "val" if (root / "val").is_dir() else root / "test"
        val = _recording_files(val_dir) if val_dir.is_dir() else []
        return _recording_files(root / "train"), val
    files = _recording_files(root)
    train = [p for i, p in enumerate(files) if i % 5 != 4]
    return train, [p for i, p in enumerate(files) if i % 5 == 4]


def parse_data_spec(spec: str) -> DataSpec:
    """Check a ``--data`` spec (kind, folder, contents) and find its classes and sensor size.

    Raises a one-line :class:`ConfigError` for an unknown kind, a missing or wrong folder.
    """
    from dvsapp.events.readers.aedat2 import CIFAR10_CLASSES

    text = str(spec).strip()
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if kind not in DATA_KINDS:
        raise ConfigError(
            f"--data {text!r}: unknown kind {kind!r} (expected synth, synth:DIR, "
            "dvsgesture:ROOT, cifar10dvs:ROOT, tonic-dvsgesture:ROOT or tonic-cifar10dvs:ROOT)"
        )
    if kind == "synth" and not sep:
        names, sensor = _synth_meta()
        return DataSpec("synth", None, tuple(names), sensor)
    if not rest:
        raise ConfigError(f"--data {text!r}: {kind} needs a folder ({kind}:ROOT)")
    root = Path(rest).expanduser()
    if not root.is_dir():
        raise ConfigError(f"--data {text!r}: {root} is not a directory")
    if kind == "synth":
        train, _val = _synth_dir_split(root)
        if not train:
            raise ConfigError(f"--data {text!r}: no recordings in {root}")
        from dvsapp.events.detect import open_reader

        with open_reader(train[0]) as r:
            sensor = tuple(r.sensor_size)
        names, _ = _synth_meta()
        return DataSpec("synth", root, tuple(names), sensor)  # type: ignore[arg-type]
    if kind == "dvsgesture":
        from dvsapp.events.dvsgesture import list_recordings

        try:
            recs = list_recordings(root, require_files=False)
        except DvsappError as e:
            raise ConfigError(f"--data {text!r}: {e}") from None
        if not any(r.split == "train" for r in recs):
            raise ConfigError(f"--data {text!r}: no training recordings found in {root}")
        return DataSpec(kind, root, DVS_GESTURE_CLASSES, (128, 128, 2))
    if kind == "cifar10dvs":
        if not _cifar10dvs_files(root):
            raise ConfigError(
                f"--data {text!r}: no class folders (airplane/, automobile/, ...) holding "
                f".aedat files in {root}"
            )
        return DataSpec(kind, root, CIFAR10_CLASSES, (128, 128, 2))
    # tonic
    if kind == "tonic-dvsgesture":
        where, pattern = root / "DVSGesture" / "ibmGestureTrain", "*.npy"
        names = DVS_GESTURE_CLASSES
    else:
        where, pattern = root / "CIFAR10DVS", "*.aedat4"
        names = CIFAR10_CLASSES
    if not where.is_dir() or not any(where.rglob(pattern)):
        raise ConfigError(
            f"--data {text!r}: tonic's data is not under {where} (download it with tonic "
            "first; dvsapp never downloads)"
        )
    return DataSpec(kind, root, tuple(names), (128, 128, 2))


def make_datasets(
    spec: str | DataSpec,
    binning: BinningConfig,
    time_steps: int,
    *,
    n_per_class: int = 100,
    val_per_class: int | None = None,
    clip_s: float = 2.0,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    workers: int | None = None,
    generator: Generator | None = None,
) -> tuple[WindowDataset, WindowDataset]:
    """(train, val) datasets for a ``--data`` spec (see the module docstring)."""
    ds = spec if isinstance(spec, DataSpec) else parse_data_spec(spec)
    names = list(ds.class_names)
    common = {"seed": seed}
    if ds.kind == "synth" and ds.root is None:
        val_n = val_per_class or max(1, n_per_class // 4)
        kw = {
            "clip_s": clip_s,
            "cache_dir": cache_dir,
            "generator": generator,
            "workers": workers,
            "class_names": names,
            "sensor_size": ds.sensor_size,
            **common,
        }
        return (
            SynthGestures("train", n_per_class, binning, time_steps, **kw),
            SynthGestures("val", val_n, binning, time_steps, **kw),
        )
    assert ds.root is not None
    if ds.kind in ("synth", "dvsgesture"):
        if ds.kind == "synth":
            train_files, val_files = _synth_dir_split(ds.root)
        else:
            from dvsapp.events.dvsgesture import list_recordings

            recs = list_recordings(ds.root, require_files=False)
            train_files = [r.path for r in recs if r.split == "train"]
            val_files = [r.path for r in recs if r.split == "test"]
        if not val_files:
            raise ConfigError(f"--data {ds.text}: no validation recordings")
        return (
            RecordingWindows(train_files, binning, time_steps, names, random_crop=True,
                             description=f"{ds.text} train", **common),
            RecordingWindows(val_files, binning, time_steps, names,
                             description=f"{ds.text} val", **common),
        )  # fmt: skip
    if ds.kind == "cifar10dvs":
        per_class = _cifar10dvs_files(ds.root)
        train_files, val_files = [], []
        for files in per_class.values():
            k = _split_90_10(len(files))
            train_files += files[:k]
            val_files += files[k:]
        return (
            RecordingWindows(train_files, binning, time_steps, names, random_crop=True,
                             one_window=True, description=f"{ds.text} train", **common),
            RecordingWindows(val_files, binning, time_steps, names, one_window=True,
                             description=f"{ds.text} val", **common),
        )  # fmt: skip
    return _tonic_datasets(ds, binning, time_steps, names, seed)


def _tonic_datasets(
    ds: DataSpec, binning: BinningConfig, time_steps: int, names: list[str], seed: int
) -> tuple[WindowDataset, WindowDataset]:
    import tonic

    assert ds.root is not None
    kw = {"seed": seed}
    if ds.kind == "tonic-dvsgesture":
        train = tonic.datasets.DVSGesture(str(ds.root), train=True)
        test = tonic.datasets.DVSGesture(str(ds.root), train=False)
        return (
            TonicWindows(train, range(len(train)), binning, time_steps, names,
                         random_crop=True, description=f"{ds.text} train", **kw),
            TonicWindows(test, range(len(test)), binning, time_steps, names,
                         description=f"{ds.text} test", **kw),
        )  # fmt: skip
    full = tonic.datasets.CIFAR10DVS(str(ds.root))
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(full.targets):
        by_class.setdefault(int(t), []).append(i)
    tr, va = [], []
    for idx in by_class.values():
        k = _split_90_10(len(idx))
        tr += idx[:k]
        va += idx[k:]
    return (
        TonicWindows(full, tr, binning, time_steps, names, random_crop=True,
                     description=f"{ds.text} train", **kw),
        TonicWindows(full, va, binning, time_steps, names, description=f"{ds.text} val", **kw),
    )  # fmt: skip
