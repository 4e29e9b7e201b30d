"""Validation a family can add to training: the per-epoch Fréchet distance (what evaluate
reports) of its clips, or of its reconstructions, to clips of the corpus's test split, for
families whose loss says little about how they sound. Keras callbacks; they import data
and metrics, never runs or evaluation."""

from __future__ import annotations

import numpy as np

from . import audio, import_tensorflow, metrics
from .data import CorpusError, corpus_clips
from .models.base import GenerationRequest

import_tensorflow()
import keras  # noqa: E402


class _TestSplitFrechet(keras.callbacks.Callback):
    """Adds `val_frechet` to each epoch's logs: the Fréchet distance between the log-mel
    frames of `clips()` and of CLIPS clips of the test split (4 s long, or window-long
    where the test files are shorter)."""

    CLIPS, SECONDS = 8, 4.0

    def __init__(self, family, data):
        super().__init__()
        self.family, self.data, self.reference = family, data, None

    def on_train_begin(self, logs=None):
        for seconds in (self.SECONDS, self.family.window() / self.family.rate):
            try:
                self.test_clips = corpus_clips(self.data, "test", seconds, self.CLIPS,
                                               rate=self.family.rate)
                break
            except CorpusError:
                continue
        self.seconds = seconds
        self.reference = self._frames(self.test_clips)

    def _frames(self, clips) -> np.ndarray:
        if self.family.rate != metrics.METRIC_RATE:
            clips = [audio.resample(c, self.family.rate, metrics.METRIC_RATE) for c in clips]
        return np.concatenate([metrics.log_mel(c) for c in clips])

    def clips(self) -> list[np.ndarray]:
        raise NotImplementedError

    def on_epoch_end(self, epoch, logs=None):
        frames = self._frames(self.clips())
        if logs is not None and np.isfinite(frames).all():
            logs["val_frechet"] = metrics.frechet_distance(frames, self.reference)


class FrechetValidation(_TestSplitFrechet):
    """The generator's clips (fixed noise) against the test split. For lstm-gan the
    feature-matching distance (val_loss) is no guide to which epoch sounds best: in three
    3-minute runs the epoch it picked scored Fréchet 194, 244 and 271, the last epoch 173,
    216 and 154; the same model scores within ±5 % across seeds."""

    def clips(self):
        family = self.family
        request = family.checked(GenerationRequest(n=self.CLIPS, seconds=self.seconds))
        return list(family.generate(self.model, request))


class ReconstructionFrechet(_TestSplitFrechet):
    """The test clips' reconstructions against the clips themselves: how far from the
    corpus what the decoder makes is, in the measure evaluate reports (vqvae's and
    wave-vae's best.keras). For vqvae the
    reconstruction loss falls epoch after epoch while this distance swings by 2x between
    epochs (docs/compare.md, "The lottery is epoch to epoch")."""

    def clips(self):
        return list(self.family.reconstruct(self.model, np.stack(self.test_clips)))
