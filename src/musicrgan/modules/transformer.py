"""A small decoder-only (causal) Transformer over token sequences, with an incremental step
that keeps each block's keys and values, so sampling costs one position per step instead
of the whole prefix (the cache of GPT-2-style samplers). Pre-norm blocks, learned
positions, a context of `context` tokens."""

from __future__ import annotations

import math

import numpy as np

from .. import import_tensorflow
from .beat_clock import ClockEmbedding
from .sampling import draw_token

tf = import_tensorflow()
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402


@keras.saving.register_keras_serializable(package="musicrgan")
class TokenAndPosition(keras.layers.Layer):
    """(batch, steps) tokens → (batch, steps, width): token embedding plus learned position
    embedding (positions 0..context-1)."""

    def __init__(self, vocabulary: int, context: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary, self.context, self.width = vocabulary, context, width
        self.tokens = layers.Embedding(vocabulary, width, name="tokens")
        self.positions = layers.Embedding(context, width, name="positions")

    def build(self, input_shape):
        self.tokens.build(input_shape)
        self.positions.build((None,))
        self.built = True

    def call(self, tokens):
        steps = ops.shape(tokens)[1]
        return self.tokens(tokens) + self.positions(ops.arange(steps))[None]

    def at(self, token, position):
        """One step: (batch,) tokens at `position` (one for all, or one per row) → (batch,
        width)."""
        return self.tokens(token) + ops.reshape(self.positions(position), (-1, self.width))

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "context": self.context,
                "width": self.width}


@keras.saving.register_keras_serializable(package="musicrgan")
class CausalBlock(keras.layers.Layer):
    """x + attention(norm(x)) over earlier positions, then x + MLP(norm(x)); in training,
    each branch's output is dropped out at rate `dropout` (GPT-2's residual dropout)."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.width, self.heads, self.depth = width, heads, width // heads
        self.dropout = float(dropout)
        self.drop = layers.Dropout(self.dropout, name="drop")
        self.norm1 = layers.LayerNormalization(epsilon=1e-5, name="norm1")
        self.qkv = layers.Dense(3 * width, name="qkv")
        self.mix = layers.Dense(width, name="mix")
        self.norm2 = layers.LayerNormalization(epsilon=1e-5, name="norm2")
        self.up = layers.Dense(4 * width, name="up")  # then GELU, in _mlp
        self.down = layers.Dense(width, name="down")

    def build(self, input_shape):
        shape = (None, self.width)
        for layer in (self.norm1, self.qkv, self.norm2, self.up):
            layer.build(shape)
        self.mix.build(shape)
        self.down.build((None, 4 * self.width))
        self.built = True

    def _heads(self, x):
        """(batch, steps, width) → (batch, heads, steps, depth)."""
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (b, t, self.heads, self.depth)), (0, 2, 1, 3))

    def _mlp(self, x, training=None):
        # exact GELU written with erf: TensorFlow's own uses erfc, which ONNX lacks
        h = self.up(self.norm2(x))
        return x + self.drop(self.down(0.5 * h * (1.0 + ops.erf(h / math.sqrt(2.0)))),
                             training=training)

    def call(self, x, training=None):
        q, k, v = ops.split(self.qkv(self.norm1(x)), 3, axis=-1)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(self.depth)
        steps = ops.shape(x)[1]
        causal = ops.arange(steps)[:, None] >= ops.arange(steps)[None, :]
        scores = ops.where(causal[None, None], scores, -1e9)
        attended = ops.matmul(ops.softmax(scores, axis=-1), v)
        b = ops.shape(x)[0]
        attended = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)), (b, steps, self.width))
        return self._mlp(x + self.drop(self.mix(attended), training=training), training)

    def step(self, x, keys, values, position):
        """One position (one for all rows, or one per row): x (batch, width); keys and values
        (batch, heads, context, depth) hold the earlier positions (zeros after them).
        Returns (output, keys, values)."""
        b = ops.shape(x)[0]
        q, k, v = ops.split(self.qkv(self.norm1(x)), 3, axis=-1)
        q, k, v = (ops.reshape(t, (b, self.heads, 1, self.depth)) for t in (q, k, v))
        context = ops.shape(keys)[2]
        here = ops.reshape(ops.one_hot(position, context), (-1, 1, context, 1))
        keys, values = keys + here * k, values + here * v
        scores = ops.matmul(q, ops.transpose(keys, (0, 1, 3, 2)))[:, :, 0] / math.sqrt(self.depth)
        seen = ops.arange(context)[None, :] <= ops.reshape(position, (-1, 1))
        scores = ops.where(seen[:, None], scores, -1e9)
        attended = ops.sum(ops.softmax(scores, axis=-1)[..., None] * values, axis=2)
        return self._mlp(x + self.mix(ops.reshape(attended, (b, self.width)))), keys, values

    def get_config(self):
        return {**super().get_config(), "width": self.width, "heads": self.heads,
                "dropout": self.dropout}


def causal_transformer(vocabulary: int, context: int, width: int, blocks: int, heads: int,
                       name: str = "transformer", clock: tuple[int, int] | None = None,
                       dropout: float = 0.0) -> keras.Model:
    """(batch, steps <= context) tokens → (batch, steps, vocabulary) next-token logits,
    with dropout at rate `dropout` on the embeddings and each block's branches in training.
    With `clock` (hop, rate): the model also takes beats (batch, 2) [tempo, beat position
    where the first token's step starts] and hears the beat clock at each step
    (beat_clock.ClockEmbedding, layer "clock")."""
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    inputs = tokens
    h = TokenAndPosition(vocabulary, context, width, name="embed")(tokens)
    if clock is not None:
        beats = keras.Input((2,), name="beats")
        inputs = [tokens, beats]
        h = h + ClockEmbedding(*clock, width, name="clock")(tokens, beats)
    h = layers.Dropout(dropout, name="embed_drop")(h)
    for i in range(blocks):
        h = CausalBlock(width, heads, dropout, name=f"block_{i}")(h)
    h = layers.LayerNormalization(epsilon=1e-5, name="final_norm")(h)
    logits = layers.Dense(vocabulary, name="logits")(h)
    return keras.Model(inputs, logits, name=name)


class TransformerStep(keras.layers.Layer):
    """One sampling step of a causal_transformer as a layer of its own (what CachedSampler
    loops over, and what export writes): the token at each row's position and every
    block's key/value cache → next-token logits and the caches with this position written.
    Shares the trained model's layers."""

    def __init__(self, model: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.embed = model.get_layer("embed")
        self.clock = next((layer for layer in model.layers if layer.name == "clock"), None)
        self.blocks = [layer for layer in model.layers if isinstance(layer, CausalBlock)]
        self.norm, self.head = model.get_layer("final_norm"), model.get_layer("logits")

    def empty_caches(self, batch) -> list:
        """Zero keys and values for every block: [keys_0, values_0, keys_1, ...]."""
        return [ops.zeros((batch, block.heads, self.embed.context, block.depth))
                for block in self.blocks for _ in ("keys", "values")]

    def call(self, token, position, caches, beats=None):
        h = self.embed.at(token, position)
        if self.clock is not None:
            h = h + self.clock.at(beats, position)
        written = []
        for block, (keys, values) in zip(self.blocks, zip(caches[::2], caches[1::2])):
            h, keys, values = block.step(h, keys, values, position)
            written += [keys, values]
        return [self.head(self.norm(h))] + written


class CachedSampler:
    """Samples a trained causal_transformer position by position with its key/value cache,
    in one compiled loop: the prefix (batch, P) is read first, then `steps` tokens are
    drawn (temperature, top-k; Gumbel-max with a seeded stateless draw, so a seed gives
    the same tokens). P + steps must fit the context. A model with a clock also takes beats
    (batch, 2): the tempo and the beat position where the prefix's first step starts."""

    def __init__(self, model: keras.Model):
        self.step = TransformerStep(model)
        self.context = self.step.embed.context
        self._loop = tf.function(self._sample, jit_compile=True)

    def _sample(self, prefix, steps, temperature, top_k, seed, banned, beats):
        b, p = tf.shape(prefix)[0], tf.shape(prefix)[1]
        caches = self.step.empty_caches(b)
        # a token is drawn at every position; those drawn while reading the prefix are dropped
        out = tf.TensorArray(tf.int32, size=p - 1 + steps)

        def body(i, token, caches, out):
            logits, *caches = self.step(token, i, caches, beats)
            drawn = draw_token(logits, temperature, top_k, banned, tf.stack([seed, i]))
            nxt = tf.where(i + 1 < p, prefix[:, tf.minimum(i + 1, p - 1)], drawn)
            return i + 1, nxt, caches, out.write(i, drawn)

        _, _, _, out = tf.while_loop(lambda i, *_: i < p - 1 + steps, body,
                                     (0, prefix[:, 0], caches, out))
        return tf.transpose(out.stack()[p - 1:])

    def sample(self, prefix: np.ndarray, steps: int, temperature: float, top_k: int,
               seed: int, banned: int = -1, beats: np.ndarray | None = None) -> np.ndarray:
        if prefix.shape[1] + steps > self.context:
            raise ValueError(f"prefix {prefix.shape[1]} + steps {steps} exceed the context "
                             f"of {self.context}")
        # steps is a Python number: the loop's length is fixed at trace time (XLA wants it)
        return np.asarray(self._loop(tf.constant(prefix, tf.int32), int(steps),
                                     tf.constant(float(temperature)), tf.constant(int(top_k)),
                                     tf.constant(int(seed)), tf.constant(int(banned)),
                                     tf.constant(np.zeros((len(prefix), 2)) if beats is None
                                                 else beats, tf.float32)))


def step_model(model: keras.Model) -> keras.Model:
    """A causal_transformer's sampling step as a model: inputs token (batch,), position
    (batch,) and keys_i, values_i (batch, heads, context, depth) for each block i (zeros to
    start), and for a model with a clock beats (batch, 2) [tempo, beat position where the
    window's first step starts]; outputs logits (batch, vocabulary) and the caches to feed
    the next step."""
    step = TransformerStep(model, name="step")
    context = step.embed.context
    token = keras.Input((), dtype="int32", name="token")
    position = keras.Input((), dtype="int32", name="position")
    caches = [keras.Input((block.heads, context, block.depth), name=f"{kind}_{i}")
              for i, block in enumerate(step.blocks) for kind in ("keys", "values")]
    beats = [keras.Input((2,), name="beats")] if step.clock is not None else []
    outputs = step(token, position, caches, *beats)
    names = ["logits"] + [f"{kind}_{i}_out" for i in range(len(step.blocks))
                          for kind in ("keys", "values")]
    outputs = [keras.layers.Identity(name=n)(o) for n, o in zip(names, outputs)]
    return keras.Model([token, position, *caches, *beats], outputs, name="prior_step")
