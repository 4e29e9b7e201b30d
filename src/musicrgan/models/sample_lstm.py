"""`sample-lstm` (musicrgan's regressive_1): the next sample from the samples before it.

Trained sequence to sequence (every step predicts its next sample, as SampleRNN and
WaveNet train), so one window gives `seq_len` targets instead of one. Output is 8-bit
mu-law classes with a softmax (default) or a regression of the sample value (MSE, as the
original did). Generation steps the LSTM cells inside one compiled loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..modules.features import mu_law_decode, mu_law_encode
from . import register
from ..modules.stepper import RecurrentStepper, lstm_layers, recurrent_step_model
from .base import ConfigError, ContinuesAudio, TrainConfig, tf

import keras  # noqa: E402  (after base: TensorFlow is imported quietly there)
from keras import ops  # noqa: E402


@dataclass
class SampleLSTMConfig(TrainConfig):
    seq_len: int = 512          # samples per training sequence
    hidden: int = 128
    layers: int = 1
    output: str = "classes"     # "classes" (mu-law softmax) or "regression" (MSE)
    classes: int = 256
    batch_size: int = 32

    def validate(self):
        super().validate()
        if self.output not in ("classes", "regression"):
            raise ConfigError(f"output must be 'classes' or 'regression', got {self.output!r}")
        if min(self.seq_len, self.hidden, self.layers) < 1 or self.classes < 2:
            raise ConfigError("seq_len, hidden and layers must be >= 1, classes >= 2")


@register
class SampleLSTM(ContinuesAudio):
    name = "sample-lstm"
    Config = SampleLSTMConfig

    def window(self):
        return self.config.seq_len + 1

    def prime_length(self):
        return self.config.seq_len

    def _quantize(self, x):
        """What the model sees as input: with classes, the mu-law value it will generate."""
        if self.config.output == "classes":
            return mu_law_decode(mu_law_encode(x, self.config.classes), self.config.classes)
        return x

    def examples(self, windows):
        x = self._quantize(windows[:, :-1])[..., None]
        if self.config.output == "classes":
            return x, mu_law_encode(windows[:, 1:], self.config.classes)
        return x, windows[:, 1:, None]

    def build(self):
        c = self.config
        inputs = keras.Input((None, 1), name="samples")
        h = inputs
        for i in range(c.layers):
            h = keras.layers.LSTM(c.hidden, return_sequences=True, name=f"lstm_{i}")(h)
        units = c.classes if c.output == "classes" else 1
        outputs = keras.layers.Dense(units, name="logits" if units > 1 else "sample")(h)
        model = keras.Model(inputs, outputs, name="sample_lstm")
        self.compile(model)
        return model

    def compile(self, model):
        if self.config.output == "classes":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        else:
            loss, metrics = keras.losses.MeanSquaredError(), []
        model.compile(optimizer=keras.optimizers.Adam(self.config.learning_rate, clipnorm=1.0),
                      loss=loss, metrics=metrics)

    def exports(self, model):
        """One step with its state: generation is one sample at a time."""
        sample = keras.Input((1,), name="sample")
        return {"step": recurrent_step_model(model, sample, None, model.layers[-1])}

    def export_notes(self, model):
        c = self.config
        out = (f"logits over {c.classes} mu-law classes of the next sample"
               if c.output == "classes" else "the next sample")
        return {"rate": self.rate,
                "step": f"sample (batch, 1) in [-1, 1] and h_i, c_i (zeros to start) -> {out} "
                        "and the states for the next step"}

    def stepper(self, model, temperature: float) -> RecurrentStepper:
        c = self.config
        head = model.layers[-1]
        temperature = max(float(temperature), 1e-4)

        def feedback(prediction, seed):
            if c.output == "regression":
                value = ops.clip(prediction, -1.0, 1.0)
                return value, value[:, 0]
            # Gumbel-max: sampling from softmax(logits / T) with a stateless, seeded draw
            u = tf.random.stateless_uniform(tf.shape(prediction), seed, 1e-9, 1.0)
            k = ops.argmax(prediction / temperature - ops.log(-ops.log(u)), axis=-1)
            value = mu_law_decode(k, c.classes)
            return value[:, None], value

        # Thousands of tiny steps: XLA fuses each step's ops, ~1.5x faster than plain TF here.
        return RecurrentStepper([layer.cell for layer in lstm_layers(model)],
                                embed=None, head=head, feedback=feedback, jit_compile=True)

    def generate(self, model, request, progress=None):
        n, samples, prime, seed = (request.n, request.samples(self.rate), request.prime,
                                   request.seed)
        stepper = self.stepper(model, request.temperature)
        if prime is None or prime.shape[1] == 0:
            prime = np.zeros((n, 1), np.float32)
        prime = np.asarray(self._quantize(prime.astype(np.float32)))[..., None]
        states = stepper.initial_state(n)
        first, x, states = stepper.prime(prime, states, seed=_chunk_seed(seed, 0))
        pieces = [np.asarray(first)[:, None]]
        chunk = max(1, self.rate // 2)
        done, index = 1, 1
        while done < samples:
            steps = chunk  # one fixed chunk length: the loop compiles once; extra is trimmed
            values, x, states = stepper.run(x, states, steps, seed=_chunk_seed(seed, index))
            pieces.append(np.asarray(values))
            done += steps
            index += 1
            if progress:
                progress(min(steps, samples - done + steps))
        audio = np.concatenate(pieces, axis=1)[:, :samples]
        return np.clip(audio, -1.0, 1.0).astype(np.float32)  # XLA rounding can pass 1 by 1e-6


def _chunk_seed(seed: int, chunk: int) -> int:
    return int((seed * 1_000_003 + chunk * 7919) % (2**31 - 1))
