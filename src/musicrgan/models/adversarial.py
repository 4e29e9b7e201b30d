"""The adversarial phase an autoencoder family can train in (wave-vae, vqvae), RAVE's second
phase: after the autoencoder phase (`train continue RUN --phase adversarial`) the encoder is
frozen and the decoder fine-tuned against a discriminator (`discriminator`: multiscale as
MelGAN's or multiperiod as HiFi-GAN's, modules/discriminators) with the hinge loss and
feature matching (`adversarial_weight`, `feature_matching`) beside the family's
reconstruction distance: a spectral distance alone leaves the decoder's output smeared in
time, its peaks blunted and the quiet between them filled where it does not know the phase.
The encoder being frozen, a second stage's latents stay what they were.

Three parts, one for each side of a family: `AdversarialConfig` (the settings, inherited by
the family's config), `AdversarialDecoder` (the model's train and test steps of the phase)
and `AdversarialPhase` (the family's phases, budget plan, discriminator and optimizers)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..modules import discriminators, replicas
from .base import ConfigError, TrainConfig, WithCritic, check_whole_numbers, tf

import keras  # noqa: E402
from keras import ops  # noqa: E402

PHASES = ("autoencoder", "adversarial")
# what the adversarial phase's history tracks, in the order its steps report them
ADVERSARIAL_METRICS = ("loss", "reconstruction", "d_loss", "g_adversarial", "feature_matching")


@dataclass
class AdversarialConfig(TrainConfig):
    """The adversarial phase's settings, for a family's config to inherit."""
    discriminator: str = "multiscale"   # or "multiperiod"
    # 8, not MelGAN's 16: half the step's cost, and as near or nearer in the same minutes
    # (docs/hierarchical.md, "The adversarial phase on the new defaults", run D)
    discriminator_channels: int = 8
    periods: list = field(default_factory=lambda: [2, 3, 5, 7, 11])   # multiperiod's
    # 0.1, not MelGAN's 1: the reconstruction distance leads, and ViSQOL rose through the
    # phase on both runs measured, where at 1 it fell on one (docs/hierarchical.md, "The
    # adversarial phase that ViSQOL hears")
    adversarial_weight: float = 0.1
    feature_matching: float = 10.0
    # where one budget trains the run through both phases (compare, a chain's first stage,
    # the demo): the share of it the adversarial phase gets (0: the autoencoder phase alone)
    adversarial_share: float = 0.25

    def validate(self):
        super().validate()
        if self.discriminator not in discriminators.KINDS:
            raise ConfigError(f"discriminator must be multiscale or multiperiod, got "
                              f"{self.discriminator!r}")
        check_whole_numbers("periods", self.periods)
        if self.discriminator_channels < 1:
            raise ConfigError("discriminator_channels must be >= 1")
        if not 0 <= self.adversarial_share < 1:
            raise ConfigError(f"adversarial_share must be in [0, 1), got "
                              f"{self.adversarial_share}")


class AdversarialDecoder(WithCritic):
    """For an autoencoder keras.Model with `encoder`, `decoder`, `distance` (its
    reconstruction distance), `phase`, and in the adversarial phase `discriminator`,
    `judges`, `adversarial_weight` and `feature_matching`: what its optimizer trains in
    each phase, and the adversarial phase's train and test steps from latents the encoder
    gave."""

    def trained_weights(self):
        """Encoder and decoder, then the decoder alone."""
        if self.phase == "adversarial":
            return self.decoder.trainable_variables
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    def count_params(self):
        """The autoencoder's weights (a discriminator only serves training)."""
        judge = self.discriminator.count_params() if self.discriminator is not None else 0
        return super().count_params() - judge

    def _judged(self, audio, training):
        return discriminators.judges(self.discriminator(audio, training=training), self.judges)

    def _adversarial_step(self, audio, latents):
        """The discriminator learns real from decoded with the hinge loss, then the decoder
        learns to pass it, with feature matching and the reconstruction distance. `latents`:
        what the frozen encoder gave for `audio` (no gradient flows into them)."""
        latents = ops.stop_gradient(latents)
        batch = ops.shape(audio)[0]
        with tf.GradientTape() as g_tape:
            decoded = self.decoder(latents, training=True)
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    both = self._judged(ops.concatenate(
                        [audio, ops.stop_gradient(decoded)], axis=0), True)
                    d_loss, _ = discriminators.hinge_losses(*_halves(both, batch))
                    d_share = replicas.share(d_loss)
                weights = self.discriminator.trainable_variables
                self.critic_optimizer.apply_gradients(
                    zip(d_tape.gradient(d_share, weights), weights))
            real, fake = _halves(self._judged(ops.concatenate([audio, decoded], axis=0), True),
                                 batch)
            _, g_adversarial = discriminators.hinge_losses(real, fake)
            matching = discriminators.feature_matching(real, fake)
            reconstruction = self.distance(audio, decoded)
            loss = (reconstruction + self.adversarial_weight * g_adversarial
                    + self.feature_matching * matching)
            share = replicas.share(loss)
        weights = self.trained_weights()
        self.optimizer.apply_gradients(zip(g_tape.gradient(share, weights), weights))
        return self._track(loss, reconstruction, d_loss, g_adversarial, matching)

    def _adversarial_test(self, audio, decoded):
        """The adversarial phase's validation logs for audio and its decoding."""
        reconstruction = self.distance(audio, decoded)
        real, fake = _halves(self._judged(ops.concatenate([audio, decoded], axis=0), False),
                             ops.shape(audio)[0])
        d_loss, g_adversarial = discriminators.hinge_losses(real, fake)
        matching = discriminators.feature_matching(real, fake)
        return self._track(reconstruction + self.adversarial_weight * g_adversarial
                           + self.feature_matching * matching, reconstruction, d_loss,
                           g_adversarial, matching)


def _halves(judged, batch):
    """Judges' outputs on [real; fake] → (on real, on fake)."""
    def part(sl):
        return [([m[sl] for m in maps], score[sl]) for maps, score in judged]
    return part(slice(None, batch)), part(slice(batch, None))


class AdversarialPhase:
    """For a Family whose model is an AdversarialDecoder and whose config an
    AdversarialConfig: its phases, how one budget is split between them, the discriminator
    of a phase, and the optimizers. The family makes a model of a phase with
    `assemble(model_of_the_last_phase, phase)`."""
    phases = PHASES

    def budget_phases(self):
        share = self.config.adversarial_share
        if not share:
            return super().budget_phases()
        return (("autoencoder", 1.0 - share), ("adversarial", 1.0))

    def discriminator_of(self, phase):
        """(discriminator, its number of judges) for a model of `phase`; (None, 0) before
        the adversarial phase."""
        c = self.config
        if phase != "adversarial":
            return None, 0
        return discriminators.build(c.discriminator, c.discriminator_channels, c.periods)

    def enter_phase(self, model, phase):
        """The adversarial phase's model: the trained networks, a new discriminator, new
        optimizers."""
        return self.assemble(model, phase)

    def compile(self, model):
        rate = self.config.learning_rate
        if model.phase == "adversarial":  # (Adam's betas as in MelGAN and HiFi-GAN)
            model.compile(optimizer=keras.optimizers.Adam(rate, 0.5, 0.9),
                          critic_optimizer=keras.optimizers.Adam(rate, 0.5, 0.9))
        else:
            # gradients clipped: three 3-minute vqvae runs each ended at a lower loss than
            # three without (docs/compare.md, "Every loop long enough")
            model.compile(optimizer=keras.optimizers.Adam(rate, clipnorm=1.0))
