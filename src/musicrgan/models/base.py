"""What every model family shares: its config, the family interface, and the compiled
recurrent stepping loop that makes autoregressive generation fast."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402


class ConfigError(ValueError):
    """A config key or value the family does not accept."""


@dataclass
class TrainConfig:
    """Training settings every family has. Families subclass this with their own fields."""
    batch_size: int = 16
    learning_rate: float = 1e-3
    steps_per_epoch: int = 100
    validation_steps: int = 10
    patience: int = 5           # epochs without a better val_loss before stopping early
    sample_every: int = 0       # write an audio sample every N epochs (0: never)
    sample_seconds: float = 2.0
    seed: int | None = None     # fixes data order and initial weights

    @classmethod
    def from_dict(cls, values: dict | None):
        values = dict(values or {})
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)} for this family; "
                              f"known: {', '.join(sorted(names))}")
        for key, value in values.items():
            values[key] = _checked(key, value, names[key].type)
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"config {f.name} must not be negative, got {value}")
        if self.batch_size < 1 or self.steps_per_epoch < 1 or self.learning_rate <= 0:
            raise ConfigError("batch_size and steps_per_epoch must be >= 1, learning_rate > 0")


_KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false",
          "str": "a string"}


def _checked(key: str, value, annotation) -> object:
    """`value` as the type a config field declares ("int", "float | None", ...), or a
    ConfigError naming the key, the type wanted and the value given."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    if value is None and "None" in kinds:
        return None
    kind = kinds[0]
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool),
          "str": isinstance(value, str)}.get(kind, True)
    if not ok:
        wanted = _KINDS.get(kind, kind) + (" or null" if "None" in kinds else "")
        raise ConfigError(f"config {key} must be {wanted}, got {value!r}")
    return float(value) if kind == "float" else value


class Family:
    """A model family: config, model, training examples, generation.

    Subclasses set `name` and `Config`, and implement the methods below. Everything else in
    musicrgan (data, runs, CLI) knows families only through this interface.
    """
    name: str = ""
    Config: type = TrainConfig
    monitor: str = "val_loss"   # what best.keras and early stopping watch
    takes_prime: bool = True
    # True: training windows come with their beat grid, and `examples` takes (windows, beats)
    uses_beats: bool = False
    # what --temperature means differs by family; this is the value generate uses by default
    default_temperature: float = 1.0

    def __init__(self, config: TrainConfig, rate: int):
        self.config, self.rate = config, int(rate)

    def window(self) -> int:
        """Samples per training window."""
        raise NotImplementedError

    def examples(self, windows):
        """A batch of windows (batch, window) → what `model.fit` takes, inside tf.data."""
        raise NotImplementedError

    def build(self) -> keras.Model:
        """A new, compiled model."""
        raise NotImplementedError

    def compile(self, model: keras.Model) -> None:
        raise NotImplementedError

    def callbacks(self, data: str) -> list:
        """Keras callbacks training adds before its own (which reads `monitor` from the
        logs): a family can put a validation measure of its own there."""
        return []

    def generate(self, model: keras.Model, n: int, samples: int, prime: np.ndarray | None,
                 temperature: float, seed: int, progress=None) -> np.ndarray:
        """(n, samples) float32 audio in [-1, 1]."""
        raise NotImplementedError

    def prime_length(self) -> int:
        """Samples of priming audio used when the user gives no --window."""
        return self.window()


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
