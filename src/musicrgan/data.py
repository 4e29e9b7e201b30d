"""Streaming windows from a corpus folder: the tf.data pipeline for corpora of any size.

Only the frames of each window are read from disk (soundfile seeks inside the wav), so
memory does not grow with the corpus. Training draws random offsets, weighted by how many
windows each file holds; evaluation walks every file in order. The train and test splits
are separate folders and separate pipelines: a window never crosses them.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from . import audio
from .beats import corpus_grids, grid_at
from .corpus.manifest import split_files
from .metrics import METRIC_RATE


log = logging.getLogger("musicrgan")


class CorpusError(Exception):
    """The corpus cannot feed the request; the message says what to change."""


@dataclass(frozen=True)
class WavFile:
    path: str
    frames: int
    rate: int


def corpus_files(corpus: str | Path, split: str,
                 unreadable: list | None = None) -> list[WavFile]:
    """The readable wavs of a split. A damaged one (not audio, truncated header) is skipped
    with a warning, not allowed to stop a long training run; `unreadable` collects
    (path, reason) for each."""
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise CorpusError(f"corpus folder not found: {corpus} (make one with `musicrgan convert` "
                          "or `musicrgan synth`)")
    files = []
    for path in split_files(corpus, split):
        try:
            info = sf.info(str(path))
            if info.frames <= 0 or info.samplerate <= 0:
                raise RuntimeError("no audio frames")
        except (RuntimeError, OSError) as exc:  # LibsndfileError is a RuntimeError
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            if unreadable is not None:
                unreadable.append((str(path), reason))
            if str(path) not in _warned:
                _warned.add(str(path))
                log.warning(f"skipping {path}: not a readable wav ({reason}); delete it or "
                            "convert its source again")
            continue
        files.append(WavFile(str(path), info.frames, info.samplerate))
    return files


_warned: set[str] = set()  # each damaged file is reported once per process


def corpus_rate(corpus: str | Path) -> int:
    """The sample rate shared by the corpus's wavs."""
    rates = {f.rate for s in ("train", "test") for f in corpus_files(corpus, s)}
    if not rates:
        raise CorpusError(f"no wav files in {corpus}/train or {corpus}/test")
    if len(rates) > 1:
        raise CorpusError(f"corpus {corpus} mixes sample rates {sorted(rates)}; convert it again "
                          "with one --rate")
    return rates.pop()


def files_of_shard(files: list, shard: tuple[int, int], where) -> list:
    """The files of shard (index, count) of a sorted list: one worker's part of a split."""
    index, count = shard
    if len(files) < count:
        raise CorpusError(f"{where} holds {len(files)} usable file(s), fewer than the {count} "
                          "workers that each read their own: use fewer workers or split the "
                          "audio into more files")
    return files[index::count]


def read_window(path: str, start: int, length: int) -> np.ndarray:
    """`length` frames from `start`, zero-padded past the end of the file."""
    with sf.SoundFile(path) as fh:
        fh.seek(start)
        data = fh.read(length, dtype="float32", always_2d=True)
    window = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if window.size < length:
        window = np.pad(window, (0, length - window.size))
    return window


class WindowSource:
    """The windows one split of a corpus can give, as plain Python (tf.data wraps it)."""

    def __init__(self, corpus: str | Path, split: str, window: int, *, pad_short: bool = False,
                 hop: int | None = None, beats: bool = False,
                 shard: tuple[int, int] | None = None):
        self.corpus, self.split, self.window = Path(corpus), split, int(window)
        if self.window <= 0:
            raise CorpusError(f"window must be positive, got {window}")
        self.hop = int(hop or window)
        all_files = corpus_files(corpus, split)
        self.files = [f for f in all_files if f.frames >= self.window or (pad_short and f.frames)]
        if shard is not None:  # (index, count): every count-th file, from the index-th
            self.files = files_of_shard(self.files, shard, self.corpus / split)
        if not self.files:
            rate = all_files[0].rate if all_files else 16000
            if not all_files:
                raise CorpusError(f"no wav files in {self.corpus / split}")
            longest = max(f.frames for f in all_files)
            raise CorpusError(
                f"no file in {self.corpus / split} is as long as the window of {self.window} "
                f"samples ({self.window / rate:.2f} s); the longest is {longest} samples "
                f"({longest / rate:.2f} s): use a shorter window or pad short files")
        # windows each file offers at random offsets (at least one when padded)
        self.weights = np.array([max(1, f.frames - self.window + 1) for f in self.files],
                                dtype=np.float64)
        self.weights /= self.weights.sum()
        # with beats, each window comes with (tempo in BPM, beat position at its first sample)
        self.grids = None
        if beats:
            self.grids = corpus_grids(self.corpus, [f.path for f in self.files])

    def _item(self, i: int, start: int):
        window = read_window(self.files[i].path, start, self.window)
        if self.grids is None:
            return window
        seconds = start / self.files[i].rate
        grid = grid_at(self.grids[i], seconds)
        return window, np.array([grid.bpm, grid.beat_at(seconds)], np.float32)

    @property
    def rate(self) -> int:
        return self.files[0].rate

    def sequential_positions(self) -> list[tuple[int, int]]:
        """(file index, start) of every window in order, hop apart; the tail is padded."""
        positions = []
        for i, f in enumerate(self.files):
            last = max(0, f.frames - self.window)
            starts = list(range(0, last + 1, self.hop))
            if f.frames > self.window and starts[-1] < last and f.frames - starts[-1] > self.window:
                starts.append(starts[-1] + self.hop)  # partial last window, zero-padded
            positions += [(i, s) for s in starts]
        return positions

    def count_distinct(self) -> int:
        """Non-overlapping windows in the split: its size in windows."""
        return sum(max(1, f.frames // self.window) for f in self.files)

    def random_windows(self, seed: int | None):
        rng = np.random.default_rng(seed)
        while True:
            i = rng.choice(len(self.files), p=self.weights)
            f = self.files[i]
            start = int(rng.integers(0, max(1, f.frames - self.window + 1)))
            yield self._item(i, start)

    def sequential_windows(self):
        for i, start in self.sequential_positions():
            yield self._item(i, start)


def window_dataset(corpus: str | Path, split: str, window: int, batch_size: int, *,
                   training: bool = True, steps: int | None = None, seed: int | None = None,
                   shuffle_buffer: int = 0, pad_short: bool = False, hop: int | None = None,
                   deterministic: bool | None = None, prefetch: bool = True,
                   beats: bool = False, first_pass: int = 0,
                   shard: tuple[int, int] | None = None):
    """A batched `tf.data.Dataset` of float32 windows, shape (batch_size, window); with
    beats, of (windows, (batch_size, 2) [tempo, beat position at the first sample]); with
    `shard` (index, count), of that share of the split's files (one worker's).

    training=True: random offsets, `steps` batches per pass (default: one pass's worth of
    distinct windows). training=False: every window in order (hop apart), once, or with
    `steps` the first `steps` batches of them.
    A seed makes it deterministic; without one each pass differs. `first_pass`: see
    `generated`.
    """
    from . import import_tensorflow
    tf = import_tensorflow()

    source = WindowSource(corpus, split, window, pad_short=pad_short, hop=hop, beats=beats,
                          shard=shard)
    distinct = source.count_distinct()
    if training and distinct < batch_size:
        raise CorpusError(
            f"{source.corpus / split} holds only {distinct} window(s) of {window} samples, fewer "
            f"than one batch of {batch_size}: use a smaller batch or window, or more audio")
    spec = tf.TensorSpec(shape=(window,), dtype=tf.float32)
    if beats:
        spec = (spec, tf.TensorSpec(shape=(2,), dtype=tf.float32))
    n_batches = (steps or max(1, distinct // batch_size)) if training else None
    ds = generated(source, spec, batch_size, n_batches, seed, first_pass,
                   sequential_batches=None if training else steps)
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    return batched(ds, batch_size, n_batches if training else None,
                   deterministic if deterministic is not None else seed is not None, prefetch)


def generated(source, spec, batch_size: int, n_batches: int | None, seed: int | None,
              first_pass: int = 0, sequential_batches: int | None = None):
    """The unbatched dataset of a window source (its `random_windows(seed)` and
    `sequential_windows()`): n_batches x batch_size random windows, or with n_batches None
    the windows in order (all, or the first `sequential_batches` x batch_size). Each pass
    (each iterator: each epoch) draws new offsets, pass k from [seed, k]; `first_pass` -1
    makes a pass that only looks at one batch (Keras takes one to build the model under a
    distribution strategy) not shift the epochs' windows. Each pass's generator ends by
    itself after its windows."""
    from . import import_tensorflow
    tf = import_tensorflow()
    if n_batches is None:
        count = None if sequential_batches is None else sequential_batches * batch_size
        return tf.data.Dataset.from_generator(
            lambda: itertools.islice(source.sequential_windows(), count), output_signature=spec)
    passes = iter(range(first_pass, 2**62))

    def windows():
        # each pass over the dataset (each epoch) draws new offsets; with a seed the
        # sequence of passes is the same on every run
        k = next(passes)  # (a look-only pass -1 draws from a stream no epoch uses)
        drawn = source.random_windows(None if seed is None else [seed, k if k >= 0 else 2**62])
        yield from itertools.islice(drawn, n_batches * batch_size)

    return tf.data.Dataset.from_generator(windows, output_signature=spec)


def batched(ds, batch_size: int, n_batches: int | None, deterministic: bool,
            prefetch: bool = True, autotune: bool = False):
    """Batches of a dataset of windows: n_batches full ones (training) or every window, the
    last batch short (n_batches None)."""
    from . import import_tensorflow
    tf = import_tensorflow()
    ds = ds.batch(batch_size, drop_remainder=n_batches is not None)
    if n_batches is not None:
        # Keras 3.15 applies one extra optimizer step per epoch to a dataset of unknown length
        # (4 optimizer iterations for 3 batches, measured); a declared length avoids it
        ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    options = tf.data.Options()
    options.deterministic = deterministic
    # no autotuning: destroying an epoch's iterator waited on its autotuning thread, with
    # the machine idle, 15-40 s at random epochs (docs/architecture.md, "Idle seconds
    # between epochs"); the pipeline is far faster than any training step without it
    # (`autotune` is for bench/bench_epochs.py's baseline)
    options.autotune.enabled = autotune
    ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds


def spread(available: int, wanted: int) -> list[int]:
    """`wanted` of the indices 0..available-1, evenly spaced: the middle of each of `wanted`
    equal stretches (all of them when there are no more than wanted)."""
    if available <= wanted:
        return list(range(available))
    return [int((i + 0.5) * available / wanted) for i in range(wanted)]


def corpus_clips(data: str | Path, split: str, seconds: float, limit: int,
                 rate: int = METRIC_RATE) -> list[np.ndarray]:
    """Up to `limit` non-overlapping clips of `seconds` from a corpus split, taken round-robin
    across files (a clip of every file, then second clips, ...) so a few long files do not
    crowd out the rest. With more files than `limit`, files spread over the split are used.
    Within a file the clips are spread over its length, away from its ends (one clip: the
    middle one): the first seconds of a song are an intro, often quiet, and made a poor
    reference (docs/compare.md, "On real recordings"). Only those clips are read."""
    length = int(round(seconds * rate))
    files = corpus_files(Path(data), split)
    if not files:
        raise CorpusError(f"{data} has no {split} split (no readable wavs in "
                          f"{Path(data) / split}): measuring needs held-out audio there")
    if len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).astype(int)]
    wanted = -(-limit // max(1, len(files)))  # clips per file, rounded up
    per_file = []
    for info in files:
        whole = None
        if info.rate == rate:  # partial reads; other rates go through ffmpeg, whole
            available = info.frames // length
        else:
            whole = audio.load(info.path, rate)
            available = whole.size // length
        picks = spread(available, wanted)
        if whole is None:
            per_file.append([read_window(info.path, i * length, length) for i in picks])
        else:
            per_file.append([whole[i * length:(i + 1) * length] for i in picks])
    clips = []
    for k in range(max((len(c) for c in per_file), default=0)):
        clips += [c[k] for c in per_file if k < len(c)]
    if not clips:
        raise CorpusError(f"no {split} file in {data} is {seconds:g} s long: evaluate with a "
                          "smaller --seconds")
    return clips[:limit]
