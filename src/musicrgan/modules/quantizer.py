"""Vector quantization with an EMA codebook and dead-code restarts, as VQ-VAE-2 and Jukebox
train theirs: codes move to the running mean of the encoder outputs assigned to them (no
codebook gradient, no codebook loss), and a code that has gone unused is restarted on a
random encoder output of the batch, so the codebook does not collapse onto a few codes.
The encoder gets the commitment loss and, through the straight-through estimator, the
decoder's gradient."""

from __future__ import annotations

from .. import import_tensorflow
from . import replicas

tf = import_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402


@keras.saving.register_keras_serializable(package="musicrgan")
class VectorQuantizer(keras.layers.Layer):
    """(batch, steps, dim) vectors → nearest codes. `call` only looks up; `update` (in a
    train step) moves the codebook. Codebook and EMA statistics are weights, saved with the
    model."""

    def __init__(self, codes: int, dim: int, decay: float = 0.99, restart_below: float = 1.0,
                 epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.codes, self.dim, self.decay = codes, dim, decay
        # a code whose EMA count (vectors per batch assigned to it) falls below this is dead
        self.restart_below, self.epsilon = restart_below, epsilon

    def build(self, input_shape=None):
        init = keras.initializers.RandomUniform(-1.0 / self.codes, 1.0 / self.codes)
        # on replicas, `update` gives every replica the same new values (from statistics
        # summed over the global batch); the first replica's is the one kept
        kept = "only_first_replica"
        self.codebook = self.add_weight(shape=(self.codes, self.dim), initializer=init,
                                        trainable=False, name="codebook", aggregation=kept)
        self.ema_count = self.add_weight(shape=(self.codes,), initializer="ones",
                                         trainable=False, name="ema_count", aggregation=kept)
        self.ema_sum = self.add_weight(shape=(self.codes, self.dim), trainable=False,
                                       initializer="zeros", name="ema_sum", aggregation=kept)
        self.ema_sum.assign(self.codebook.value)
        self.built = True

    def distances(self, vectors):
        """(..., dim) → (N, codes) squared Euclidean distance of each vector to each code."""
        flat = ops.reshape(vectors, (-1, self.dim))
        return (ops.sum(flat * flat, axis=1, keepdims=True)
                - 2.0 * ops.matmul(flat, ops.transpose(self.codebook))
                + ops.sum(self.codebook * self.codebook, axis=1)[None, :])

    def indices(self, vectors):
        """(..., dim) → (...) index of the nearest code."""
        return ops.reshape(ops.argmin(self.distances(vectors), axis=1), ops.shape(vectors)[:-1])

    def lookup(self, indices):
        return ops.take(self.codebook, indices, axis=0)

    def call(self, vectors):
        """(quantized, indices): quantized has the straight-through gradient to `vectors`."""
        indices = self.indices(vectors)
        quantized = self.lookup(indices)
        return vectors + ops.stop_gradient(quantized - vectors), indices

    def commitment(self, vectors, indices):
        """How far the encoder's vectors are from their codes (the codes held still)."""
        return ops.mean(ops.square(vectors - ops.stop_gradient(self.lookup(indices))))

    def update(self, vectors, indices, seed):
        """One EMA step towards the batch's assignments, then restart dead codes on random
        vectors of the batch. Returns (perplexity of the batch's code use, dead codes).
        On replicas, the assignments are counted over the global batch; a dead code
        restarts on a vector of the first replica's batch."""
        flat = ops.reshape(vectors, (-1, self.dim))
        onehot = ops.one_hot(ops.reshape(indices, (-1,)), self.codes)
        counts = replicas.total(ops.sum(onehot, axis=0))
        sums = replicas.total(ops.matmul(ops.transpose(onehot), flat))
        d = self.decay
        ema_count = d * self.ema_count + (1.0 - d) * counts
        ema_sum = d * self.ema_sum + (1.0 - d) * sums
        # Laplace smoothing keeps a code with no vectors from dividing by zero
        total = ops.sum(ema_count)
        smoothed = (ema_count + self.epsilon) / (total + self.codes * self.epsilon) * total
        codebook = ema_sum / smoothed[:, None]

        dead = ema_count < self.restart_below
        picks = tf.random.stateless_uniform((self.codes,), seed, 0, ops.shape(flat)[0],
                                            dtype="int32")
        fresh = ops.take(flat, picks, axis=0)
        self.codebook.assign(ops.where(dead[:, None], fresh, codebook))
        self.ema_sum.assign(ops.where(dead[:, None], fresh, ema_sum))
        self.ema_count.assign(ops.where(dead, ops.ones_like(ema_count), ema_count))

        return self.perplexity(indices), ops.sum(ops.cast(dead, "float32"))

    def perplexity(self, indices):
        """How many codes `indices` effectively use: exp of their histogram's entropy."""
        counts = ops.sum(ops.one_hot(ops.reshape(indices, (-1,)), self.codes), axis=0)
        p = counts / ops.maximum(ops.sum(counts), 1.0)
        return ops.exp(-ops.sum(p * ops.log(p + 1e-10)))

    def get_config(self):
        return {**super().get_config(), "codes": self.codes, "dim": self.dim,
                "decay": self.decay, "restart_below": self.restart_below,
                "epsilon": self.epsilon}


class NearestCodes(keras.layers.Layer):
    """A trained quantizer's lookup as a layer of its own (for export): vectors → int32
    codes."""

    def __init__(self, quantizer: VectorQuantizer, **kwargs):
        super().__init__(**kwargs)
        self.quantizer = quantizer

    def call(self, vectors):
        # TensorFlow's own argmin: keras.ops.argmin's bitcast (for -0.0) has no ONNX op
        nearest = tf.argmin(self.quantizer.distances(vectors), axis=1, output_type=tf.int32)
        return ops.reshape(nearest, ops.shape(vectors)[:-1])


class CodeVectors(keras.layers.Layer):
    """The other way (for export): int32 codes → the codebook's vectors."""

    def __init__(self, quantizer: VectorQuantizer, **kwargs):
        super().__init__(**kwargs)
        self.quantizer = quantizer

    def call(self, codes):
        return self.quantizer.lookup(codes)
