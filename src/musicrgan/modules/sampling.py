"""Drawing the next token from a model's logits, inside compiled sampling loops: a banned
token never drawn, top-k, temperature, and Gumbel-max with a seeded stateless draw (the
same seed, the same tokens)."""

from __future__ import annotations

from .. import import_tensorflow

tf = import_tensorflow()


def draw_token(logits, temperature, top_k, banned, seed):
    """(batch, vocabulary) logits → (batch,) int32 tokens. temperature 0 is greedy; top_k 0
    keeps every token; banned -1 bans none. Numbers or scalar tensors alike."""
    temperature = tf.cast(temperature, tf.float32)
    vocabulary = tf.shape(logits)[-1]
    logits = tf.where(tf.range(vocabulary)[None] == banned, -1e9, logits)
    k = tf.where(top_k > 0, tf.minimum(top_k, vocabulary), vocabulary)
    kth = tf.gather(tf.sort(logits, direction="DESCENDING"), [k - 1], axis=-1)
    logits = tf.where(logits < kth, -1e9, logits)
    u = tf.random.stateless_uniform(tf.shape(logits), seed, 1e-9, 1.0)
    noise = tf.where(temperature > 0, -tf.math.log(-tf.math.log(u)), tf.zeros_like(u))
    return tf.cast(tf.argmax(logits / tf.maximum(temperature, 1e-4) + noise, axis=-1), tf.int32)
