"""The compiled recurrent stepping loop that makes autoregressive generation fast."""

from __future__ import annotations

from .. import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402


def lstm_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]


class RecurrentStep(keras.layers.Layer):
    """One step of an (embed →) stacked LSTM → head model as a layer of its own (what
    RecurrentStepper loops over, and what export writes): a step's input and every layer's
    state [h_0, c_0, h_1, ...] → the head's output and the new states. Shares the trained
    model's layers."""

    def __init__(self, cells, embed, head, **kwargs):
        super().__init__(**kwargs)
        self.cells, self.embed, self.head = cells, embed, head

    def empty_states(self, batch) -> list:
        return [ops.zeros((batch, cell.units)) for cell in self.cells for _ in ("h", "c")]

    def call(self, x, states):
        h = self.embed(x) if self.embed is not None else x
        written = []
        for cell, (hidden, carry) in zip(self.cells, zip(states[::2], states[1::2])):
            h, (hidden, carry) = cell(h, [hidden, carry])
            written += [hidden, carry]
        return [self.head(h)] + written


class RecurrentStepper:
    """Runs stacked LSTM cells one step at a time inside one compiled `tf.while_loop`.

    `embed(x)` (or None) maps a step's input to the first cell's input, `head(h)` maps the last
    cell's output to a prediction, and `feedback(prediction, step_seed)` turns the
    prediction into (next input, emitted value). `prime` reads given inputs (teacher
    forcing) to set the state; `run` then feeds each output back as the next input. State
    is carried between calls, so long outputs go chunk by chunk (and a progress bar can
    move between chunks).
    """

    def __init__(self, cells, embed, head, feedback, jit_compile: bool = True):
        self.step, self.feedback = RecurrentStep(cells, embed, head), feedback
        self._prime = tf.function(self._prime_loop, reduce_retracing=True)
        # XLA fuses the small per-step ops; the loop's length is a trace-time constant.
        self._free = tf.function(self._free_loop, jit_compile=jit_compile)

    def initial_state(self, batch: int):
        return self.step.empty_states(batch)

    def _step(self, x, states):
        prediction, *states = self.step(x, states)
        return prediction, states

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

def recurrent_step_model(model: keras.Model, step_input, embed, head,
                         output: str = "prediction") -> keras.Model:
    """`model`'s LSTM layers one step at a time, as a model: inputs `step_input` (a
    keras.Input for one step: a token, a sample, a block) and h_i, c_i (batch, units) for
    each LSTM layer i (zeros to start); outputs `output` and the states to feed the next
    step. `embed` (or None) maps the step's input to the first LSTM's, `head` maps the last
    LSTM's output to the prediction."""
    cells = [layer.cell for layer in lstm_layers(model)]
    step = RecurrentStep(cells, embed, head, name="step")
    states = [keras.Input((cell.units,), name=f"{kind}_{i}")
              for i, cell in enumerate(cells) for kind in ("h", "c")]
    outputs = step(step_input, states)
    names = [output] + [f"{kind}_{i}_out" for i in range(len(cells)) for kind in ("h", "c")]
    outputs = [keras.layers.Identity(name=n)(o) for n, o in zip(names, outputs)]
    return keras.Model([step_input, *states], outputs, name=f"{model.name}_step")
