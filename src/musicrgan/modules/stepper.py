"""The compiled recurrent stepping loop that makes autoregressive generation fast."""

from __future__ import annotations

from .. import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402


def lstm_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]


class RecurrentStepper:
    """Runs stacked LSTM cells one step at a time inside one compiled `tf.while_loop`.

    `embed(x)` maps a step's input to the first cell's input, `head(h)` maps the last
    cell's output to a prediction, and `feedback(prediction, step_seed)` turns the
    prediction into (next input, emitted value). `prime` reads given inputs (teacher
    forcing) to set the state; `run` then feeds each output back as the next input. State
    is carried between calls, so long outputs go chunk by chunk (and a progress bar can
    move between chunks).
    """

    def __init__(self, cells, embed, head, feedback, jit_compile: bool = True):
        self.cells, self.embed, self.head, self.feedback = cells, embed, head, feedback
        self._prime = tf.function(self._prime_loop, reduce_retracing=True)
        # XLA fuses the small per-step ops; the loop's length is a trace-time constant.
        self._free = tf.function(self._free_loop, jit_compile=jit_compile)

    def initial_state(self, batch: int):
        return [[tf.zeros((batch, c.units)), tf.zeros((batch, c.units))] for c in self.cells]

    def _step(self, x, states):
        h = self.embed(x)
        new_states = []
        for cell, state in zip(self.cells, states):
            h, state = cell(h, state)
            new_states.append(list(state))
        return self.head(h), new_states

    def _prime_loop(self, prime, states, seed):
        def body(i, states, _):
            prediction, states = self._step(prime[:, i], states)
            return i + 1, states, prediction

        first, _ = self._step(prime[:, 0], states)  # shapes for the loop's carried prediction
        _, states, prediction = tf.while_loop(
            lambda i, *_: i < tf.shape(prime)[1], body, (0, states, tf.zeros_like(first)))
        x, value = self.feedback(prediction, tf.stack([seed, -1]))
        return value, x, states

    def _free_loop(self, x0, states, seed, steps):
        out = tf.TensorArray(tf.float32, size=steps)

        def body(i, x, states, out):
            prediction, states = self._step(x, states)
            x, value = self.feedback(prediction, tf.stack([seed, i]))
            return i + 1, x, states, out.write(i, value)

        _, x, states, out = tf.while_loop(lambda i, *_: i < steps, body, (0, x0, states, out),
                                          maximum_iterations=steps)
        values = out.stack()  # (steps, batch, ...)
        perm = [1, 0] + list(range(2, len(values.shape)))
        return tf.transpose(values, perm), x, states

    def prime(self, prime, states, seed: int):
        """Read `prime` (batch, steps, ...); returns (first new value, next input, states)."""
        return self._prime(tf.convert_to_tensor(prime), states, tf.constant(seed, tf.int32))

    def run(self, x0, states, steps: int, seed: int):
        """Returns (values (batch, steps, ...), next input, states)."""
        return self._free(tf.convert_to_tensor(x0), states, tf.constant(seed, tf.int32),
                          int(steps))
