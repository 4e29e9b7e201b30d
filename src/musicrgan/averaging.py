"""Weight averaging for any family (`weight_average` in its config): an exponential moving
average of the trained weights (Polyak averaging) is what each epoch's validation measures
and what its checkpoints keep, while training goes on from the raw weights. A run stopped
by its budget at any step then keeps a model averaged over its last few hundred steps, not
the last step's, whose quality swings from step to step (docs/compare.md, "Averaged
weights"). A Keras callback; it imports nothing of the toolkit's."""

from __future__ import annotations

import numpy as np

from . import import_tensorflow

import_tensorflow()
import keras  # noqa: E402


def average_decay(decay: float, step: int) -> float:
    """The decay at the `step`-th update (1, 2, ...): TensorFlow's warm-up
    (tf.train.ExponentialMovingAverage's num_updates), so that the first updates do not tie
    the average to the initial weights: min(decay, (1 + step) / (10 + step))."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightAverage(keras.callbacks.Callback):
    """Keeps the moving average of the model's trainable weights, updated after every
    training step, and puts it into the model when an epoch's training ends (before its
    validation, so the validation loss, the callbacks after this one and the checkpoints see
    the average) and the raw weights back when the next epoch begins. When training ends
    the model holds the average. A session that resumes from a checkpoint trains on from
    the averaged weights, its average starting there. Must come first among the callbacks."""

    def __init__(self, decay: float):
        super().__init__()
        self.decay = decay

    def on_train_begin(self, logs=None):
        self.trained = list(self.model.trainable_variables)
        self.average = [np.array(w.numpy(), dtype=np.float64) for w in self.trained]
        self.updates, self.raw = 0, None

    def on_train_batch_end(self, batch, logs=None):
        self.updates += 1
        decay = average_decay(self.decay, self.updates)
        for average, weight in zip(self.average, self.trained):
            average *= decay
            average += (1.0 - decay) * weight.numpy()

    def _put_average_in(self):
        if self.raw is None:
            self.raw = [w.numpy() for w in self.trained]
            for average, weight in zip(self.average, self.trained):
                weight.assign(average.astype(weight.dtype))

    def on_test_begin(self, logs=None):
        if getattr(self, "trained", None) is not None:  # in fit, not a lone evaluate
            self._put_average_in()

    def on_epoch_end(self, epoch, logs=None):
        self._put_average_in()

    def on_epoch_begin(self, epoch, logs=None):
        if self.raw is not None:
            for raw, weight in zip(self.raw, self.trained):
                weight.assign(raw)
            self.raw = None
