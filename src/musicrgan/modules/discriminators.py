"""Raw-audio discriminators for adversarial fine-tuning, and their losses: the multi-scale
discriminator of MelGAN (Kumar et al. 2019: the same convolutional judge on the audio at
1x, 2x and 4x average-pooled) and the multi-period discriminator of HiFi-GAN (Kong et al.
2020: the audio folded into `period` columns, 2-D convolutions along time, one judge per
period), narrower than the papers' so that a 2-core CPU can train them. Each is a Keras
model from (batch, samples) audio to a flat list of outputs, `layers` per judge: its
feature maps, then its score map. Hinge losses and L1 feature matching as in those papers.
"""

from __future__ import annotations

from .. import import_tensorflow

import_tensorflow()
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

KINDS = ("multiscale", "multiperiod")


def multiscale(channels: int = 16, scales: int = 3, name: str = "discriminator") -> keras.Model:
    """MelGAN's judges at 1x, 2x, 4x... pooled audio; strided convolutions (not grouped
    as MelGAN's: TensorFlow's grouped convolutions on a CPU ran a step 25x slower)."""
    audio = keras.Input((None,), name="audio")
    x = layers.Reshape((-1, 1))(audio)
    outputs = []
    for s in range(scales):
        if s:
            x = layers.AveragePooling1D(4, strides=2, padding="same", name=f"pool{s}")(x)
        h, widths = x, [channels, 2 * channels, 4 * channels, 4 * channels]
        h = layers.Conv1D(widths[0], 15, padding="same", name=f"s{s}_in")(h)
        h = layers.LeakyReLU(0.2)(h)
        outputs.append(h)
        for i, width in enumerate(widths[1:3]):
            h = layers.Conv1D(width, 41, strides=4, padding="same", name=f"s{s}_down{i}")(h)
            h = layers.LeakyReLU(0.2)(h)
            outputs.append(h)
        h = layers.Conv1D(widths[3], 5, padding="same", name=f"s{s}_mix")(h)
        h = layers.LeakyReLU(0.2)(h)
        outputs.append(h)
        outputs.append(layers.Conv1D(1, 3, padding="same", name=f"s{s}_score")(h))
    return keras.Model(audio, outputs, name=name)


class Fold(keras.layers.Layer):
    """(batch, samples) → (batch, ceil(samples / period), period, 1), zero-padded at the end."""

    def __init__(self, period: int, **kwargs):
        super().__init__(**kwargs)
        self.period = period

    def call(self, audio):
        pad = (-ops.shape(audio)[1]) % self.period
        audio = ops.pad(audio, [[0, 0], [0, pad]])
        return ops.reshape(audio, (ops.shape(audio)[0], -1, self.period, 1))

    def get_config(self):
        return {**super().get_config(), "period": self.period}


keras.saving.register_keras_serializable(package="musicrgan")(Fold)


def multiperiod(channels: int = 16, periods=(2, 3, 5, 7, 11),
                name: str = "discriminator") -> keras.Model:
    """HiFi-GAN's judges, one per period: (5, 1) convolutions strided 3 along time."""
    audio = keras.Input((None,), name="audio")
    outputs = []
    for p in periods:
        h = Fold(p, name=f"fold{p}")(audio)
        for i, width in enumerate((channels, 2 * channels, 4 * channels, 4 * channels)):
            h = layers.Conv2D(width, (5, 1), strides=(3 if i < 3 else 1, 1), padding="same",
                              name=f"p{p}_conv{i}")(h)
            h = layers.LeakyReLU(0.2)(h)
            outputs.append(h)
        outputs.append(layers.Conv2D(1, (3, 1), padding="same", name=f"p{p}_score")(h))
    return keras.Model(audio, outputs, name=name)


def build(kind: str, channels: int, periods=(2, 3, 5, 7, 11)) -> tuple[keras.Model, int]:
    """The discriminator of `kind` and the number of judges in it."""
    if kind == "multiscale":
        return multiscale(channels), 3
    return multiperiod(channels, periods), len(periods)


def judges(outputs: list, count: int) -> list[tuple[list, object]]:
    """A discriminator's flat outputs → per judge (feature maps, score map)."""
    per = len(outputs) // count
    return [(outputs[i * per:(i + 1) * per - 1], outputs[(i + 1) * per - 1])
            for i in range(count)]


def hinge_losses(real: list, fake: list) -> tuple[object, object]:
    """(discriminator loss, generator loss) over judges, from judges(...) of real and fake
    audio: mean relu(1 - D(real)) + relu(1 + D(fake)) for the discriminator, -D(fake) for
    the generator, each summed over judges."""
    d_loss = sum(ops.mean(ops.relu(1.0 - r)) + ops.mean(ops.relu(1.0 + f))
                 for (_, r), (_, f) in zip(real, fake))
    g_loss = sum(-ops.mean(f) for _, f in fake)
    return d_loss, g_loss


def feature_matching(real: list, fake: list):
    """Mean L1 distance between the real and fake feature maps of every judge and layer,
    the real ones held fixed."""
    distances = [ops.mean(ops.abs(ops.stop_gradient(r) - f))
                 for (real_maps, _), (fake_maps, _) in zip(real, fake)
                 for r, f in zip(real_maps, fake_maps)]
    return sum(distances) / len(distances)
