"""`vqvae` (TechnoGen's model, done right): a raw-audio VQ-VAE. A 1-D convolutional encoder
with dilated residual units downsamples by the product of `strides` (256x by default: 62.5
codes a second at 16 kHz), a vector quantizer with an EMA codebook and dead-code restarts
(modules/quantizer.py) turns each step into one of `codes` codes, and a decoder turns codes
back into audio: by default Vocos's (residual units at the code rate, one short-time
spectrum per code, an inverse STFT), or by config (`decoder: conv`) the encoder's mirror in
transposed convolutions. Loss: waveform L1 plus the multi-resolution log-STFT distance and
spectral convergence, the distance of the log-mel frames' mean and covariance
(`moments_weight`), optionally the onset-flux distance (`onset_weight`) (weights by config),
plus the commitment loss for the encoder. The decoder's audio is not
bounded: peaks of reconstructions can pass full scale (writing a file clips them).

Two phases, as wave-vae (`train continue RUN --phase adversarial`; models/adversarial): after
the autoencoder phase, encoder and codebook are frozen (the codes stay what a code-prior
learned) and the decoder is fine-tuned against a discriminator.

It encodes and decodes (a `musicrgan.models.base.Encodes`); it does not generate by itself:
a `code-prior` run on top of it (`--upstream`) learns its code sequences and generates
them. The codebook's health is in the history every epoch: `perplexity` (how many codes a
batch effectively uses) and `dead_codes` (restarted that step)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..modules import replicas
from ..modules.conv import audio_decoder, decoder_config_error, encoder
from ..modules.quantizer import CodeVectors, NearestCodes, VectorQuantizer
from ..metrics import METRIC_RATE
from ..modules.spectral import SPECTRAL_SCALES, AudioDistance
from ..validation import ReconstructionFrechet
from . import register
from .adversarial import (ADVERSARIAL_METRICS, AdversarialConfig, AdversarialDecoder,
                          AdversarialPhase)
from .base import ConfigError, Encodes, RunningMeans, MadeOfNetworks, check_whole_numbers, tf

import keras  # noqa: E402


@dataclass
class VQVAEConfig(AdversarialConfig):
    window: int = 16384          # samples per training window (about 1 s at 16 kHz)
    channels: int = 16           # of the first convolutions; doubling per downsampling (cap 256)
    # downsampling: their product; 256x (62.5 codes a second at 16 kHz) since 2026-12-06:
    # a prior's 128 codes of context then hear 2 s, a bar at 120 BPM, which gave the songs
    # the corpus's pulse where 64x's 0.5-1 s did not (docs/compare.md, "The pulse")
    strides: list = field(default_factory=lambda: [4, 8, 8])
    latent_dim: int = 64
    codes: int = 512
    commitment: float = 0.25     # weight of the commitment loss (VQ-VAE's beta)
    decay: float = 0.99          # of the codebook's moving averages
    waveform_weight: float = 1.0
    spectral_weight: float = 1.0
    # weight of the spectral convergence beside the log-spectral distance, per scale
    # (modules.spectral.multiscale_spectral_distance): the log distance alone left the
    # reconstructions 3-4 LU quiet (docs/compare.md, "vqvae at the code rate")
    convergence_weight: float = 1.0
    # the decoder's audio less its DC and sub-audio drift (0: none); without it the decoder
    # learned a DC offset of 0.27 in 5 minutes (docs/compare.md, "DC")
    drift_filter: int = 512
    # weight of the onset-flux distance (modules.spectral.onset_flux_distance): the hits'
    # rises, whose repetition tempo strength measures; 10 gave ViSQOL a little, not the
    # chain's pulse (docs/compare.md, "The pulse")
    onset_weight: float = 0.0
    # weight of the distance between the first two moments (mean, covariance) of the
    # batch's log-mel frames and its reconstructions' (modules.spectral
    # .frame_moments_distance): the L1 distances are met by a median where the decoder is
    # unsure, which fills the quiet between hits and narrows each band's range; 3 took
    # 3-minute reconstructions from 80-145 to 51-84 (docs/compare.md, "The quiet between")
    moments_weight: float = 3.0
    # back to audio: "istft" (Vocos's head: every layer at the code rate, one
    # `istft_fft`-point spectrum per code, an inverse STFT; modules/conv.istft_decoder) or
    # "conv" (transposed convolutions up to the sample rate, the default before 2026-12-06:
    # after 3 minutes its reconstructions were twice as far from the corpus: docs/compare.md)
    decoder: str = "istft"
    istft_fft: int = 512   # two codes long (a multiple of the downsampling)
    # STFT sizes of the spectral distance (longer than the window: left out)
    spectral_scales: list = field(default_factory=lambda: list(SPECTRAL_SCALES))
    # of one budget (compare, a chain's first stage, the demo), the adversarial phase's
    # share (models/adversarial): none, as the tuned decoder took the demo's songs further
    # from the corpus (docs/compare.md, "The adversarial phase for the demo's vqvae")
    adversarial_share: float = 0.0
    batch_size: int = 8
    learning_rate: float = 1e-3

    def validate(self):
        super().validate()
        check_whole_numbers("strides", self.strides)
        check_whole_numbers("spectral_scales", self.spectral_scales)
        if min(self.channels, self.latent_dim, self.codes) < 1 or self.codes < 2:
            raise ConfigError("channels and latent_dim must be >= 1, codes >= 2")
        if self.window < math.prod(self.strides):
            raise ConfigError(f"window ({self.window}) must be at least the downsampling "
                              f"({math.prod(self.strides)})")
        if self.drift_filter < 0:
            raise ConfigError(f"drift_filter must be >= 0, got {self.drift_filter}")
        error = decoder_config_error(self.decoder, self.istft_fft, math.prod(self.strides))
        if error:
            raise ConfigError(error)
        if not 0 < self.decay < 1:
            raise ConfigError(f"decay must be between 0 and 1, got {self.decay}")


@keras.saving.register_keras_serializable(package="musicrgan")
class VQVAEModel(AdversarialDecoder, RunningMeans, MadeOfNetworks, keras.Model):
    """Encoder, quantizer and decoder with the VQ-VAE train step; in the adversarial phase
    also the discriminator and its optimizer."""
    NETWORKS = ("encoder", "decoder", "discriminator")
    SETTINGS = ("codes", "latent_dim", "commitment", "decay", "waveform_weight",
                "spectral_weight", "spectral_scales", "convergence_weight", "onset_weight",
                "moments_weight", "rate", "phase", "judges", "adversarial_weight",
                "feature_matching")

    def __init__(self, encoder, decoder, discriminator=None, codes=512, latent_dim=64,
                 commitment=0.25, decay=0.99, waveform_weight=1.0, spectral_weight=1.0,
                 spectral_scales=SPECTRAL_SCALES, convergence_weight=0.0, onset_weight=0.0,
                 moments_weight=0.0, rate=METRIC_RATE, phase="autoencoder", judges=0,
                 adversarial_weight=1.0, feature_matching=10.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.discriminator = encoder, decoder, discriminator
        self.phase, self.judges = phase, judges
        self.adversarial_weight, self.feature_matching = adversarial_weight, feature_matching
        self.codes, self.latent_dim = codes, latent_dim
        self.commitment, self.decay = commitment, decay
        self.waveform_weight, self.spectral_weight = waveform_weight, spectral_weight
        self.spectral_scales = tuple(spectral_scales)
        self.convergence_weight = convergence_weight
        self.onset_weight, self.moments_weight, self.rate = onset_weight, moments_weight, rate
        self.distance = AudioDistance(rate, spectral_weight, spectral_scales,
                                      convergence_weight, waveform_weight, onset_weight,
                                      moments_weight)
        self.quantizer = VectorQuantizer(codes, latent_dim, decay, name="quantizer")
        self.quantizer.build()
        if phase == "adversarial":
            self.start_tracking(ADVERSARIAL_METRICS)
        else:
            self.start_tracking(("loss", "reconstruction", "commitment", "perplexity",
                                 "dead_codes"))

    def build(self, input_shape=None):
        self.built = True  # encoder and decoder are functional models, built when made

    def call(self, audio):
        quantized, _ = self.quantizer(self.encoder(audio))
        return self.decoder(quantized)

    def _step_losses(self, audio, training):
        latents = self.encoder(audio, training=training)
        quantized, indices = self.quantizer(latents)
        decoded = self.decoder(quantized, training=training)
        reconstruction = self.distance(audio, decoded)
        commitment = self.quantizer.commitment(latents, indices)
        return reconstruction, commitment, latents, indices

    def quantized(self, audio):
        """The codebook's vectors for the audio's codes, as the decoder gets them."""
        return self.quantizer.lookup(self.quantizer.indices(self.encoder(audio,
                                                                         training=False)))

    def train_step(self, audio):
        if self.phase == "adversarial":
            return self._adversarial_step(audio, self.quantized(audio))
        with tf.GradientTape() as tape:
            reconstruction, commitment, latents, indices = self._step_losses(audio, True)
            loss = reconstruction + self.commitment * commitment
            share = replicas.share(loss)
        weights = self.trained_weights()
        self.optimizer.apply_gradients(zip(tape.gradient(share, weights), weights))
        seed = replicas.step_seed(self.optimizer, 17)
        perplexity, dead = self.quantizer.update(latents, indices, seed)
        return self._track(loss, reconstruction, commitment, perplexity, dead)

    def test_step(self, audio):
        if self.phase == "adversarial":
            return self._adversarial_test(audio, self.decoder(self.quantized(audio),
                                                              training=False))
        reconstruction, commitment, _, indices = self._step_losses(audio, False)
        perplexity = self.quantizer.perplexity(indices)
        return self._track(reconstruction + self.commitment * commitment, reconstruction,
                           commitment, perplexity, 0.0)


@register
class VQVAE(AdversarialPhase, Encodes):
    name = "vqvae"
    Config = VQVAEConfig
    # best.keras is the epoch whose reconstructions of test clips are nearest them in
    # Fréchet distance: the loss kept falling while that distance swung 58-120 between
    # epochs, and the epoch the loss picked was the worst since the first (docs/compare.md)
    monitor = "val_frechet"

    def callbacks(self, data):
        return [ReconstructionFrechet(self, data)]

    @property
    def hop(self) -> int:
        """Samples per code."""
        return math.prod(self.config.strides)

    def latent_hop(self):
        return self.hop

    def codebook_size(self):
        return self.config.codes

    def window(self):
        return self.config.window // self.hop * self.hop

    def examples(self, windows):
        return windows

    def build(self):
        c = self.config
        return self._assembled(encoder(c.channels, c.strides, c.latent_dim),
                               audio_decoder(c.decoder, c.channels, c.strides, c.latent_dim,
                                             c.istft_fft, drift_filter=c.drift_filter),
                               "autoencoder")

    def assemble(self, model, phase):
        """A model of `phase` with the trained networks and codebook."""
        assembled = self._assembled(model.encoder, model.decoder, phase)
        assembled.quantizer.set_weights(model.quantizer.get_weights())
        return assembled

    def _assembled(self, encoder_net, decoder_net, phase):
        c = self.config
        discriminator, judges = self.discriminator_of(phase)
        model = VQVAEModel(encoder_net, decoder_net, discriminator, c.codes, c.latent_dim,
                           c.commitment, c.decay, c.waveform_weight, c.spectral_weight,
                           c.spectral_scales, c.convergence_weight, c.onset_weight,
                           c.moments_weight, self.rate, phase, judges, c.adversarial_weight,
                           c.feature_matching, name="vqvae")
        model.build()
        self.compile(model)
        return model

    def encode(self, model, audio):
        """(batch, samples) → (batch, ceil(samples / hop)) int32 codes (the audio is padded
        with silence to whole codes)."""
        encode = self.traced(model, "encode", lambda audio: model.quantizer.indices(
            model.encoder(audio, training=False)), tf.TensorSpec((None, None), tf.float32))
        return np.asarray(encode(self.whole_steps(audio))).astype(np.int32)

    def decode(self, model, codes):
        """(batch, steps) codes → (batch, steps * hop) audio."""
        decode = self.traced(model, "decode", lambda codes: model.decoder(
            model.quantizer.lookup(codes), training=False), tf.TensorSpec((None, None), tf.int32))
        return np.asarray(decode(np.asarray(codes, np.int32)))

    def exports(self, model):
        audio = keras.Input((None,), name="audio")
        codes = NearestCodes(model.quantizer, name="codes")(model.encoder(audio))
        given = keras.Input((None,), dtype="int32", name="codes")
        decoded = model.decoder(CodeVectors(model.quantizer, name="vectors")(given))
        return {"encoder": keras.Model(audio, codes, name="encoder"),
                "decoder": keras.Model(given, keras.layers.Identity(name="audio")(decoded),
                                       name="decoder")}

    def export_notes(self, model):
        return {"samples_per_code": self.hop, "codebook_size": self.config.codes,
                "encoder": f"audio (batch, samples) at {self.rate} Hz, samples a multiple of "
                           f"{self.hop} (pad with silence) -> codes (batch, samples / {self.hop})",
                "decoder": f"codes (batch, steps) -> audio (batch, steps * {self.hop})"}
