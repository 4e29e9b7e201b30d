"""Continuous latents and how they are held to a prior: the diagonal Gaussian posterior with
its reparameterized sample and KL divergence to N(0, I) (a VAE's), the weight schedules that
keep a posterior from collapsing early (linear warm-up, cyclic annealing), and the maximum
mean discrepancy to N(0, I) (a Wasserstein autoencoder's, Tolstikhin et al. 2018). What
spec-vae and wave-vae (and the latent VAE over them) share."""

from __future__ import annotations

from .. import import_tensorflow

tf = import_tensorflow()
from keras import ops  # noqa: E402

KERNELS = ("imq", "rbf")
# the kernel widths, as multiples of the prior's 2 * dim: WAE's "sum over scales", so no
# one width has to be right for every latent size and training stage
SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def split(h, dim: int):
    """An encoder's 2 * dim outputs → (mean, log variance), the log variance clipped to
    [-10, 10] so that exp stays finite."""
    return h[..., :dim], ops.clip(h[..., dim:], -10.0, 10.0)


def sample(mean, log_var, seed):
    """mean + sigma * eps with eps ~ N(0, I) from a stateless seed (differentiable in mean
    and log_var: the reparameterization trick)."""
    return mean + ops.exp(0.5 * log_var) * tf.random.stateless_normal(tf.shape(mean), seed)


def kl_to_standard_normal(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over the latent's channels, averaged over
    every other axis."""
    return ops.mean(0.5 * ops.sum(ops.exp(log_var) + mean * mean - 1.0 - log_var, axis=-1))


def schedule(step, span: int, mode: str = "linear"):
    """A regularizer's weight factor (0..1) at an optimizer step: `linear` rises from 0 to 1
    over `span` steps and stays there; `cyclic` rises over the first half of every span and
    holds for the second (Fu et al. 2019)."""
    step, span = ops.cast(step, "float32"), float(span)
    if mode == "cyclic":
        return ops.minimum(1.0, 2.0 * ops.mod(step, span) / span)
    return ops.minimum(1.0, step / span)


def _kernel(a, b, kernel: str):
    """Sum over SCALES of k(a_i, b_j): (n, m)."""
    dim = ops.cast(ops.shape(a)[-1], "float32")
    squared = (ops.sum(a * a, axis=-1)[:, None] + ops.sum(b * b, axis=-1)[None, :]
               - 2.0 * ops.matmul(a, ops.transpose(b)))
    squared = ops.maximum(squared, 0.0)
    total = 0.0
    for scale in SCALES:
        c = 2.0 * dim * scale
        total = total + (c / (c + squared) if kernel == "imq" else ops.exp(-squared / c))
    return total


def mmd_to_standard_normal(z, seed, kernel: str = "imq"):
    """The unbiased estimate of MMD^2 between the rows of z (n, dim) and as many draws from
    N(0, I), with an inverse multiquadratic or Gaussian kernel over several widths."""
    n = ops.cast(ops.shape(z)[0], "float32")
    prior = tf.random.stateless_normal(tf.shape(z), seed)
    off_diagonal = 1.0 - ops.eye(ops.shape(z)[0])
    within = (ops.sum(_kernel(z, z, kernel) * off_diagonal)
              + ops.sum(_kernel(prior, prior, kernel) * off_diagonal)) / (n * (n - 1.0))
    return within - 2.0 * ops.mean(_kernel(z, prior, kernel))
