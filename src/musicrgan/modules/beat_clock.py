"""The beat clock: where in the bar, beat and 16th note each frame of a window falls, as
sines and cosines a network can read (lstm-gan's generator and discriminator hear it)."""

from __future__ import annotations

import numpy as np

from .. import import_tensorflow
from ..beats import MAX_BPM, MIN_BPM
from . import replicas

import_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402


CLOCK_FEATURES = 6
TEMPO_BINS = int(MAX_BPM - MIN_BPM) + 1


def beat_clock(beats, steps, hop, centre, rate):
    """(batch, 2) [tempo in BPM, beat position at the window's first sample] → (batch,
    steps, 6): sin and cos of the phase of the bar (4 beats), the beat and the 16th note at
    sample `centre + i * hop` of the window, for i < steps."""
    times = (ops.cast(ops.arange(steps), "float32") * hop + centre) / rate
    position = beats[:, 1:2] + times[None, :] * beats[:, 0:1] / 60.0
    angles = 2.0 * np.pi * ops.stack([position / 4.0, position, position * 4.0], axis=-1)
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


def tempo_range_weight(layer):
    """A (2,) non-trainable weight of `layer`: the lowest and highest tempo of the training
    windows (saved with the model), so generation draws tempos the model has heard."""
    # on replicas (--strategy mirrored), the first replica's batch widens it
    return layer.add_weight(shape=(2,), initializer=keras.initializers.Constant([np.inf, -np.inf]),
                            trainable=False, name="tempo_range", aggregation="only_first_replica")


def widen_tempo_range(tempo_range, beats):
    """Stretch `tempo_range` to hold the tempos of a batch's `beats` (batch, 2) (on
    replicas, of every replica's batch: each computes the same range)."""
    tempos = replicas.gathered(beats[:, 0])
    tempo_range.assign(ops.stack([ops.minimum(tempo_range[0], ops.min(tempos)),
                                  ops.maximum(tempo_range[1], ops.max(tempos))]))


def draw_tempos(tempo_range, n: int, seed: int, bpm: float | None = None) -> np.ndarray:
    """Tempo of each of n songs: `bpm`, or drawn uniformly from the trained range (120 for a
    model never trained)."""
    if bpm:
        return np.full(n, float(bpm), np.float32)
    low, high = np.asarray(tempo_range)
    if not low <= high:
        low = high = 120.0
    return np.random.default_rng(seed).uniform(low, high, n).astype(np.float32)


def draw_corpus_tempos(tempo_counts, n: int, seed: int, bpm: float | None = None) -> np.ndarray:
    """Tempo of each of n songs: `bpm`, or drawn as often as the training windows had it
    (whole BPM, 120 for a model never trained)."""
    counts = np.asarray(tempo_counts, np.float64)
    if bpm or not counts.sum() > 0:
        return np.full(n, float(bpm or 120.0), np.float32)
    rng = np.random.default_rng(seed)
    return (MIN_BPM + rng.choice(len(counts), n, p=counts / counts.sum())).astype(np.float32)


@keras.saving.register_keras_serializable(package="musicrgan")
class ClockEmbedding(keras.layers.Layer):
    """A sequence model's ear for the beat: beats (batch, 2) [tempo, beat position at the
    first step's start] → (batch, steps, width), a learned projection of the beat clock at
    the middle of each step (`hop` samples at `rate`). Training windows widen `tempo_range`
    and count into `tempo_counts` (windows per whole BPM from MIN_BPM), so generation can
    draw the corpus's own tempos (`draw_corpus_tempos`): a prior that learned its songs
    by heart plays them best at the tempos it heard them."""

    def __init__(self, hop: int, rate: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.hop, self.rate, self.width = int(hop), int(rate), int(width)
        self.project = keras.layers.Dense(width, name="project")
        self.tempo_range = tempo_range_weight(self)
        # on replicas, Keras updates a variable by assigning each replica's new value under
        # the aggregation (an assign_add under "sum" would add the old counts as often as
        # there are replicas): "mean" of old + replicas x this replica's counts adds them all
        self.tempo_counts = self.add_weight(shape=(TEMPO_BINS,), initializer="zeros",
                                            trainable=False, name="tempo_counts",
                                            aggregation="mean")

    def build(self, input_shape=None):
        self.project.build((None, CLOCK_FEATURES))
        self.built = True

    def call(self, steps_like, beats, training=None):
        if training:
            widen_tempo_range(self.tempo_range, beats)
            bins = ops.clip(ops.round(beats[:, 0]) - MIN_BPM, 0, TEMPO_BINS - 1)
            counts = ops.sum(ops.one_hot(ops.cast(bins, "int32"), TEMPO_BINS), axis=0)
            self.tempo_counts.assign_add(counts * replicas.count())
        steps = ops.shape(steps_like)[1]
        return self.project(beat_clock(beats, steps, self.hop, self.hop / 2, self.rate))

    def at(self, beats, position):
        """The projection at one step: `position` (one for all rows, or one per row) →
        (batch, width)."""
        offset = ops.cast(ops.reshape(position, (-1, 1)), "float32") * self.hop
        here = ops.concatenate([beats[:, :1], beats[:, 1:] + offset * beats[:, :1]
                                / (60.0 * self.rate)], axis=1)
        return self.project(beat_clock(here, 1, self.hop, self.hop / 2, self.rate)[:, 0])

    def get_config(self):
        return {**super().get_config(), "hop": self.hop, "rate": self.rate, "width": self.width}
