"""The device strategy a training session runs under (`train ... --strategy NAME`).

- `default`: TensorFlow's default, one device.
- `mirrored`: `tf.distribute.MirroredStrategy` over every GPU of this machine (on a machine
  without one, its CPU as a single replica). Each replica takes `batch_size` windows of a
  global batch of `batch_size x replicas`; Keras scales each replica's loss by 1/replicas and
  sums the gradients, so a step is one step on the global batch. The learning rate stays
  what the config says: with more replicas the batch grows and the gradient's noise
  shrinks; raising `learning_rate` with the replica count (the linear scaling rule, Goyal et
  al. 2017) is the user's choice, made with `--set learning_rate=...`.
- `multi-worker`: refused for now: Keras 3.15's `fit` fails under
  `MultiWorkerMirroredStrategy` (keras-team/keras#20585; docs/architecture.md has the
  reproduction).

A family whose training step is its own replicates when that step gives each replica's
share of the loss and distinct noise (modules/replicas.py: latent-vae, latent-diffusion,
spec-vae); the ones whose steps also keep statistics (lstm-gan's generator average, the EMA
codebooks of vqvae and of spec-vae with vq latents, wave-vae's adversarial phase) say
`replicates = False` and are refused."""

from __future__ import annotations

from . import import_tensorflow
from .runs import RunError

STRATEGIES = ("default", "mirrored", "multi-worker")


def check_strategy(name: str, family) -> None:
    """RunError saying why strategy `name` cannot train `family` (as configured), before
    anything is made."""
    if name not in STRATEGIES:
        raise RunError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "default":
        return None
    if name == "multi-worker":
        raise RunError("--strategy multi-worker is not available yet: Keras 3.15's fit fails "
                       "under TensorFlow's MultiWorkerMirroredStrategy (keras-team/keras#20585);"
                       " use mirrored, every GPU of one machine")
    if not family.replicates:
        raise RunError(f"--strategy {name}: {family.name} trains with a training step of its "
                       "own, not yet written for replicas; train it with --strategy default")


def make_strategy(name: str, family):
    """The tf.distribute strategy for `name` (None for default), after check_strategy."""
    check_strategy(name, family)
    if name == "default":
        return None
    tf = import_tensorflow()
    devices = ([d.name for d in tf.config.list_logical_devices("GPU")]
               or [d.name for d in tf.config.list_logical_devices("CPU")])
    return tf.distribute.MirroredStrategy(devices)
