"""`fft-lstm` (musicrgan's regressive2, after unnati-xyz/music-generation): audio in blocks,
each block's FFT as real and imaginary parts, TimeDistributed Dense → LSTM →
TimeDistributed Dense predicting the next block.

Two variants, as in the original: `seq2seq` (every step predicts the block after it) and
`next` (the whole sequence predicts only the block after the last). With `overlap`, blocks
are sqrt-Hann windowed at 50 % hop and the output is overlap-added, so joins don't click.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..modules.features import analysis_window, fft_features, frame, inverse_fft_features, overlap_add
from . import register
from ..modules.stepper import RecurrentStepper, lstm_layers, recurrent_step_model
from .base import ConfigError, ContinuesAudio, TrainConfig, tf

import keras  # noqa: E402
from keras import ops  # noqa: E402


@dataclass
class FFTLSTMConfig(TrainConfig):
    block: int = 512            # samples per block (the original: 1 s)
    seq_len: int = 16           # blocks per training sequence (the original: 10)
    hidden: int = 256           # the original: 1024
    overlap: bool = True
    mode: str = "seq2seq"       # "seq2seq" or "next"
    batch_size: int = 16

    def validate(self):
        super().validate()
        if self.mode not in ("seq2seq", "next"):
            raise ConfigError(f"mode must be 'seq2seq' or 'next', got {self.mode!r}")
        if self.block < 8 or self.block % 2 or self.seq_len < 1 or self.hidden < 1:
            raise ConfigError("block must be an even number >= 8; seq_len and hidden >= 1")


@register
class FFTLSTM(ContinuesAudio):
    name = "fft-lstm"
    Config = FFTLSTMConfig

    @property
    def hop(self) -> int:
        return self.config.block // 2 if self.config.overlap else self.config.block

    @property
    def features(self) -> int:
        return self.config.block + 2

    # noise relative to the block's RMS (see `stepper`). On the built-in corpus after 3 CPU
    # minutes, Fréchet distance to the test split by temperature: 0 → 1204 (a drone),
    # 0.1 → 1009, 0.3 → 641, 0.5 → 1360, 1.0 → 3232 (noise)
    default_temperature = 0.3

    def window(self):
        return self.config.seq_len * self.hop + self.config.block

    def prime_length(self):
        return (self.config.seq_len - 1) * self.hop + self.config.block

    def to_features(self, audio):
        """(batch, samples) → (batch, blocks, block + 2)."""
        frames = frame(audio, self.config.block, self.hop) * analysis_window(self.config.block,
                                                                             self.config.overlap)
        return fft_features(frames, self.config.block)

    def to_audio(self, features: np.ndarray) -> np.ndarray:
        frames = np.asarray(inverse_fft_features(features, self.config.block))
        frames = frames * analysis_window(self.config.block, self.config.overlap)
        return overlap_add(frames, self.hop)

    def examples(self, windows):
        feats = self.to_features(windows)
        target = feats[:, 1:] if self.config.mode == "seq2seq" else feats[:, -1]
        return feats[:, :-1], target

    def build(self):
        c = self.config
        inputs = keras.Input((None, self.features), name="fft_blocks")
        h = keras.layers.TimeDistributed(keras.layers.Dense(c.hidden, activation="tanh"),
                                         name="embed")(inputs)
        h = keras.layers.LSTM(c.hidden, return_sequences=c.mode == "seq2seq", name="lstm")(h)
        dense = keras.layers.Dense(self.features, name="next_block")
        outputs = keras.layers.TimeDistributed(dense, name="head")(h) if c.mode == "seq2seq" \
            else dense(h)
        model = keras.Model(inputs, outputs, name="fft_lstm")
        self.compile(model)
        return model

    def compile(self, model):
        model.compile(optimizer=keras.optimizers.Adam(self.config.learning_rate, clipnorm=1.0),
                      loss=keras.losses.MeanSquaredError())

    def _head(self, model):
        """The Dense that makes the next block (without seq2seq's TimeDistributed)."""
        return model.get_layer("head").layer if self.config.mode == "seq2seq" \
            else model.get_layer("next_block")

    def exports(self, model):
        """One step with its state: generation is one block at a time."""
        block = keras.Input((self.features,), name="fft_block")
        return {"step": recurrent_step_model(model, block, model.get_layer("embed").layer,
                                             self._head(model))}

    def export_notes(self, model):
        c = self.config
        return {"rate": self.rate, "block": c.block, "hop": self.hop,
                "step": f"fft_block (batch, {self.features}): the real and imaginary rfft "
                        f"(divided by sqrt(block)) of a windowed block of {c.block} samples "
                        f"(blocks every {self.hop}), and h_i, c_i (zeros to start) -> the "
                        "next block's, and the states for the next step; overlap-add the "
                        "inverse rfft of the blocks"}

    def stepper(self, model, temperature: float) -> RecurrentStepper:
        def feedback(prediction, seed):
            if temperature > 0:  # noise relative to the block's own size keeps it from settling
                rms = ops.sqrt(ops.mean(ops.square(prediction), axis=-1, keepdims=True))
                prediction = prediction + temperature * rms * tf.random.stateless_normal(
                    tf.shape(prediction), seed)
            return prediction, prediction

        # Few steps with large matrix products: TF's own (oneDNN) kernels beat XLA's here.
        return RecurrentStepper([layer.cell for layer in lstm_layers(model)],
                                embed=model.get_layer("embed").layer, head=self._head(model),
                                feedback=feedback, jit_compile=False)

    def generate(self, model, request, progress=None):
        n, samples, prime, seed = (request.n, request.samples(self.rate), request.prime,
                                   request.seed)
        stepper = self.stepper(model, request.temperature)
        block = self.config.block
        if prime is None or prime.shape[1] < block:
            prime = np.zeros((n, block), np.float32)
        prime_feats = np.asarray(self.to_features(prime.astype(np.float32)))
        blocks_needed = int(np.ceil(max(0, samples - block) / self.hop)) + 1
        states = stepper.initial_state(n)
        first, x, states = stepper.prime(prime_feats, states, seed=seed)
        pieces, done, index = [np.asarray(first)[:, None]], 1, 1
        chunk = max(1, self.rate // self.hop)
        while done < blocks_needed:
            steps = chunk  # one fixed chunk length: the loop compiles once; extra is trimmed
            values, x, states = stepper.run(x, states, steps, seed=seed + index)
            pieces.append(np.asarray(values))
            done, index = done + steps, index + 1
            if progress:
                progress(min(steps * self.hop, samples))
        audio = self.to_audio(np.concatenate(pieces, axis=1))
        return self.finished(audio, samples)
