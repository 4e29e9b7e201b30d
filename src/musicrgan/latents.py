"""The latent cache: a corpus encoded once by an upstream run's checkpoint, for the second
stages trained on it (`train new RUN --upstream UPSTREAM`).

    UPSTREAM/latents/<checkpoint fingerprint>-<corpus key>/
        train/<file>.npy, test/<file>.npy   the codes (or continuous latents, or posterior
                                            means and log variances) of each corpus file
        train/<file>@<offset>.npy           shifted views: the file encoded from `offset`
                                            samples in (a fraction of a latent step)
        complete.json                       the corpus and offsets it encodes, written last

Shifted views are data augmentation for a second stage trained on a small corpus: an
encoder that downsamples is not shift-invariant, so the same music encoded a fraction of a
latent step later gives another latent sequence that its decoder turns into the same
sound. A run with `shifted_views: V` trains on the train split at offsets k * hop / V
(k < V); validation stays on the test split at offset 0.

The fingerprint is a hash of the checkpoint file: another checkpoint (the upstream trained
on) gets a cache of its own, and runs on the same checkpoint and corpus share one. The
corpus key is a hash of the corpus folder's path: two corpora whose files have the same
names (every synthesized corpus has loop_000.wav) never share files. A file whose length
changed since the cache was built (a corpus rendered again) is encoded again; one changed
at the same length is not noticed (the listing holds lengths, not contents). Files are encoded
a chunk at a time and each is written atomically, so memory stays flat in file and corpus
size, and a killed encoding resumes where it stopped. Training reads windows of codes from
memory-mapped files, so memory stays flat in corpus size there too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from .audio import atomic_write_text, temporary_file
from .beats import corpus_grids, grid_at
from .data import CorpusError, batched, corpus_files, files_of_shard, generated, read_window
from .locks import folder_lock
from .models.base import pieces

CACHE, COMPLETE = "latents", "complete.json"
CHUNK_SECONDS = 30  # audio encoded at once (and its margins): memory flat in a file's length
log = logging.getLogger("musicrgan")


def fingerprint(checkpoint: Path) -> str:
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cache_folder(upstream, checkpoint_fingerprint: str, data: str) -> Path:
    corpus = hashlib.sha256(str(Path(data).resolve()).encode()).hexdigest()[:8]
    return upstream.path / CACHE / f"{checkpoint_fingerprint}-{corpus}"


def _corpus_listing(data: str) -> dict:
    return {split: {Path(f.path).relative_to(Path(data) / split).as_posix(): f.frames
                    for f in corpus_files(data, split)} for split in ("train", "test")}


def view_offsets(hop: int, views: int) -> list[int]:
    """The sample offsets of `views` shifted views of a file encoded with latent hop `hop`
    (0 first: the file as it is)."""
    return sorted({k * hop // views for k in range(max(1, views))})


def cache_file(folder: Path, split: str, name: str, offset: int = 0) -> Path:
    return folder / split / (f"{name}.npy" if offset == 0 else f"{name}@{offset}.npy")


def _file_offset(path: Path) -> tuple[str, int]:
    """(corpus file name, offset) of a cache file's name without .npy."""
    name, at, offset = path.name[:-len(".npy")].rpartition("@")
    if not (at and offset.isdigit()):  # the file as it is (whose name may hold an @)
        return str(path.with_suffix("")), 0
    return str(path.with_name(name)), int(offset)


def build_cache(upstream, data: str, checkpoint_fingerprint: str, progress=None,
                views: int = 1) -> Path:
    """The cache of `data` encoded by the upstream run's best checkpoint (whose fingerprint
    the caller has checked), with `views` shifted views of the train split, built now where
    it is missing or incomplete."""
    folder = cache_folder(upstream, checkpoint_fingerprint, data)
    family = upstream.family
    hop = family.latent_hop()
    offsets = view_offsets(hop, views)
    listing = {"data": str(data), "files": _corpus_listing(data)}
    complete = folder / COMPLETE
    changed = []
    if complete.is_file():
        try:
            done = json.loads(complete.read_text())
            if ({k: done.get(k) for k in listing} == listing
                    and set(offsets) <= set(done.get("offsets", [0]))):
                return folder
            offsets = sorted(set(offsets) | set(done.get("offsets", [0])))
            # files whose length changed since (re-rendered, replaced) or that are gone:
            # their cached latents encode audio the corpus no longer holds
            changed = [(split, name) for split, files in done["files"].items()
                       for name, frames in files.items()
                       if listing["files"].get(split, {}).get(name) != frames]
        except (ValueError, AttributeError, TypeError, KeyError):
            pass  # a damaged marker: check the files again below
    folder.mkdir(parents=True, exist_ok=True)
    model = upstream.model("best")
    chunk = max(1, int(CHUNK_SECONDS * family.rate) // hop) * hop
    with folder_lock(folder, "encoding into"):
        for leftover in folder.rglob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        stale = {str(folder / split / name) for split, name in changed}
        for path in folder.rglob("*.npy") if stale else ():
            if _file_offset(path)[0] in stale:
                path.unlink(missing_ok=True)
        todo = [(split, name, frames, offset) for split, files in listing["files"].items()
                for name, frames in files.items()
                for offset in (offsets if split == "train" else [0])
                if offset == 0 or frames - offset >= hop
                if not cache_file(folder, split, name, offset).is_file()]
        if todo:
            views = f", the train split at {len(offsets)} offsets" if len(offsets) > 1 else ""
            log.info(f"encoding {len(todo)} corpus files with {upstream.path} into "
                     f"{folder} (once for this checkpoint and corpus{views})")
        for done, (split, name, frames, offset) in enumerate(todo, 1):
            source = str(Path(data) / split / name)
            # each piece encoded with its neighbours' samples around it, so that the
            # latents at its ends are those of the whole file
            codes = []
            for start, end, first, last in pieces(-(-(frames - offset) // hop), chunk // hop):
                begin, stop = offset + first * hop, min(frames, offset + last * hop)
                context = family.cache_latents(model, read_window(
                    source, begin, stop - begin)[None])[0]
                codes.append(context[start - first:end - first])
            target = cache_file(folder, split, name, offset)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = temporary_file(target, target.name)
            codes = np.concatenate(codes)
            if codes.dtype.kind in "iu":  # codes of a quantizer: as small as they fit
                codes = codes.astype(np.int16 if codes.max(initial=0) < 2**15 else np.int32)
            with open(tmp, "wb") as fh:
                np.save(fh, codes)
            os.replace(tmp, target)
            if progress:
                progress(done, len(todo))
        atomic_write_text(complete, json.dumps(listing | {"offsets": offsets}))
    return folder


class LatentSource:
    """Windows of `length` steps from one split of a cache (memory-mapped files): (length,)
    int32 codes, or (length, channels) float32 for continuous latents; of the views at
    `offsets` (samples; the file as it is: 0). With `beats` (corpus, hop, rate): the corpus
    the cache encodes and the audio samples per latent step at `rate`, each window comes
    with its beat grid (data.WindowSource's (tempo in BPM, beat position at its first
    step's start))."""

    def __init__(self, folder: Path, split: str, length: int,
                 beats: tuple[str | Path, int, int] | None = None,
                 shard: tuple[int, int] | None = None, offsets=(0,)):
        self.length = int(length)
        paths = [p for p in sorted((Path(folder) / split).rglob("*.npy"))
                 if _file_offset(p)[1] in offsets]
        if shard is not None:  # one worker's files (data.files_of_shard)
            paths = files_of_shard(paths, shard, Path(folder) / split)
        arrays = [np.load(p, mmap_mode="r") for p in paths]
        self.dtype = np.int32 if not arrays or arrays[0].dtype.kind in "iu" else np.float32
        self.shape = (self.length, *(arrays[0].shape[1:] if arrays else ()))
        kept = [(p, a) for p, a in zip(paths, arrays) if a.shape[0] >= self.length]
        self.arrays = [a for _, a in kept]
        self.grids = None
        if beats is not None and kept:
            corpus, hop, rate = beats
            self.seconds_per_step = hop / rate
            # the cache mirrors the corpus: SPLIT/NAME.wav[@OFFSET].npy encodes
            # CORPUS/SPLIT/NAME.wav (from OFFSET samples in)
            sources = [_file_offset(p.relative_to(Path(folder) / split)) for p, _ in kept]
            names = sorted({name for name, _ in sources})   # each file once, whatever its views
            grids = dict(zip(names, corpus_grids(corpus, [str(Path(corpus) / split / name)
                                                          for name in names])))
            self.grids = [grids[name] for name, _ in sources]
            self.start_seconds = [offset / rate for _, offset in sources]
        if not self.arrays:
            longest = max((a.shape[0] for a in arrays), default=0)
            raise CorpusError(f"no file in the {split} split of the latent cache {folder} is "
                              f"{self.length} latent steps long (the longest: {longest}): "
                              "use a shorter context or window")
        weights = np.array([a.shape[0] - self.length + 1 for a in self.arrays], np.float64)
        self.weights = weights / weights.sum()

    def count_distinct(self) -> int:
        return sum(a.shape[0] // self.length for a in self.arrays)

    def _item(self, i: int, start: int):
        window = np.asarray(self.arrays[i][start:start + self.length], self.dtype)
        if self.grids is None:
            return window
        seconds = self.start_seconds[i] + start * self.seconds_per_step
        grid = grid_at(self.grids[i], seconds)
        return window, np.array([grid.bpm, grid.beat_at(seconds)], np.float32)

    def random_windows(self, seed):
        rng = np.random.default_rng(seed)
        while True:
            i = rng.choice(len(self.arrays), p=self.weights)
            yield self._item(i, int(rng.integers(0, self.arrays[i].shape[0] - self.length + 1)))

    def sequential_windows(self):
        for i, a in enumerate(self.arrays):
            for start in range(0, a.shape[0] - self.length + 1, self.length):
                yield self._item(i, start)

    def signature(self):
        """What the windows are, as tf.data wants to know."""
        from . import import_tensorflow
        tf = import_tensorflow()
        spec = tf.TensorSpec(shape=self.shape, dtype=tf.as_dtype(self.dtype))
        return spec if self.grids is None else (spec, tf.TensorSpec((2,), tf.float32))


def latent_dataset(folder: Path, split: str, length: int, batch_size: int, *,
                   training: bool = True, steps: int | None = None, seed: int | None = None,
                   beats: tuple[str | Path, int, int] | None = None, first_pass: int = 0,
                   shard: tuple[int, int] | None = None, offsets=(0,)):
    """Batches (batch_size, length) int32 of codes, or (batch_size, length, channels)
    float32 latents, as data.window_dataset gives audio, of the views at `offsets`; with
    `beats` (LatentSource), of (latents, (batch_size, 2) [tempo, beat position at the first
    step's start]); with `shard`, of one worker's files."""
    source = LatentSource(folder, split, length, beats, shard, offsets)
    n_batches = (steps or max(1, source.count_distinct() // batch_size)) if training else None
    return batched(generated(source, source.signature(), batch_size, n_batches, seed,
                             first_pass, sequential_batches=None if training else steps),
                   batch_size, n_batches, seed is not None)
