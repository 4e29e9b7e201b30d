"""The vector quantizer on small tensors: nearest codes, the straight-through gradient, the
EMA update of the codebook, and dead-code restarts; and the multi-scale spectral distance
the autoencoders train on, and the onset flux vqvae can add to it."""

import numpy as np
import pytest

from musicrgan import import_tensorflow, metrics
from musicrgan.modules.quantizer import VectorQuantizer
from musicrgan.modules.spectral import (LogMel, multiscale_spectral_distance, onset_flux,
                                        onset_flux_distance)

tf = import_tensorflow()


def quantizer(codebook, decay=0.5, restart_below=0.0):
    vq = VectorQuantizer(len(codebook), len(codebook[0]), decay=decay,
                         restart_below=restart_below)
    vq.build()
    vq.codebook.assign(np.asarray(codebook, np.float32))
    vq.ema_sum.assign(np.asarray(codebook, np.float32))
    vq.ema_count.assign(np.ones(len(codebook), np.float32))
    return vq


def test_nearest_code_and_straight_through_gradient():
    vq = quantizer([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]])
    x = tf.Variable([[[0.9, 1.2], [0.1, -0.2], [-0.8, 1.7]]])
    with tf.GradientTape() as tape:
        quantized, indices = vq(x)
        loss = tf.reduce_sum(quantized * tf.constant([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]]))
    assert indices.numpy().tolist() == [[1, 0, 2]]
    np.testing.assert_allclose(quantized.numpy(), [[[1, 1], [0, 0], [-1, 2]]], atol=1e-6)
    # the decoder's gradient passes to the encoder's vectors unchanged (straight through)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [[[1, 2], [3, 4], [5, 6]]])
    # the commitment loss pulls the vectors to their codes, not the codes to the vectors
    with tf.GradientTape() as tape:
        commitment = vq.commitment(x, indices)
    expected = 2 * (x.numpy() - quantized.numpy()) / x.numpy().size
    np.testing.assert_allclose(tape.gradient(commitment, x).numpy(), expected, atol=1e-6)


def test_ema_update_moves_each_code_toward_the_mean_of_its_vectors():
    vq = quantizer([[0.0, 0.0], [4.0, 4.0]], decay=0.5)
    x = tf.constant([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    _, indices = vq(x)
    perplexity, dead = vq.update(x, indices, tf.constant([0, 0]))
    # count: 0.5 * 1 + 0.5 * 2 = 1.5 and 0.5 * 1 + 0.5 * 1 = 1; sums: 0.5 * code + 0.5 * sum
    count = np.array([1.5, 1.0])
    sums = np.array([[0.5, 0.5], [4.5, 4.5]])
    smoothed = (count + 1e-5) / (count.sum() + 2e-5) * count.sum()
    np.testing.assert_allclose(vq.codebook.numpy(), sums / smoothed[:, None], rtol=1e-4)
    np.testing.assert_allclose(vq.ema_count.numpy(), count, rtol=1e-6)
    p = np.array([2, 1]) / 3
    assert float(perplexity) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-4)
    assert float(dead) == 0


def test_dead_codes_restart_on_vectors_of_the_batch():
    vq = quantizer([[0.0, 0.0], [100.0, 100.0], [-100.0, 50.0]], decay=0.5, restart_below=0.75)
    x = tf.constant([[[0.1, 0.2], [0.3, -0.1], [0.2, 0.0], [-0.2, 0.1]]])
    _, indices = vq(x)
    assert set(indices.numpy().ravel()) == {0}
    _, dead = vq.update(x, indices, tf.constant([3, 1]))
    assert float(dead) == 2  # codes 1 and 2 got no vector: EMA count 0.5 < 0.75
    codebook = vq.codebook.numpy()
    batch = x.numpy().reshape(-1, 2)
    for code in codebook[1:]:  # each restarted on one of the batch's vectors
        assert np.min(np.abs(batch - code).sum(axis=1)) < 1e-6
    assert vq.ema_count.numpy()[1:].tolist() == [1.0, 1.0]
    _, indices = vq(x)
    assert len(set(indices.numpy().ravel())) > 1  # the batch now spreads over more codes


def test_multiscale_spectral_distance_is_zero_for_the_same_audio_and_grows_with_noise():
    rng = np.random.default_rng(0)
    t = np.arange(4096) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)
    distances = [float(multiscale_spectral_distance(x, x + level * rng.standard_normal(
        x.shape).astype(np.float32))) for level in (0.0, 0.01, 0.1)]
    assert distances[0] == pytest.approx(0, abs=1e-5)
    assert 0 < distances[1] < distances[2]


def test_spectral_convergence_adds_the_relative_level_error_at_every_scale():
    """A copy at half the level: the convergence term adds |1 - 0.5| per scale (it is
    relative: the same for a quiet and a loud signal), and nothing for the same audio."""
    rng = np.random.default_rng(0)
    scales = (256, 64)
    for level in (0.05, 0.5):
        x = (level * rng.standard_normal((2, 4096))).astype("float32")
        half = (0.5 * x).astype("float32")
        plain = float(multiscale_spectral_distance(x, half, scales))
        both = float(multiscale_spectral_distance(x, half, scales, convergence=2.0))
        assert both - plain == pytest.approx(2.0 * 0.5 * len(scales), rel=1e-3)
        assert float(multiscale_spectral_distance(x, x, scales, convergence=2.0)) < 1e-3


def hits(attack_seconds: float, level: float = 1.0, rate: int = 16000) -> np.ndarray:
    """Two seconds of noise bursts every quarter second over a quiet hum, each burst rising
    over `attack_seconds` and decaying over 50 ms."""
    t = np.arange(2 * rate) / rate
    phase = t % 0.25
    envelope = np.minimum(1.0, phase / max(attack_seconds, 1e-9)) * np.exp(-phase / 0.05)
    noise = np.random.default_rng(0).standard_normal(t.size)
    return (level * (0.5 * envelope * noise + 0.01 * np.sin(2 * np.pi * 110 * t))
            )[None].astype(np.float32)


def test_onset_flux_is_the_metrics_onset_envelope_and_sees_attacks_not_level():
    """The differentiable flux peaks where metrics.onset_envelope does (the hits, four a
    second); the distance is ~0 for the same hits at half the level (a rise in log units)
    and large for the same hits with 40 ms attacks, the smearing that costs a
    reconstruction its pulse."""
    log_mel = LogMel(16000, 1024, 128, 64)
    sharp = hits(0.0005)
    flux = np.asarray(onset_flux(log_mel, sharp))[0]
    frame_rate = 16000 / 128
    peaks = np.sort(np.argsort(flux)[-8:]) / frame_rate
    # on the hits (a frame's flux rises as a hit enters its window: up to 36 ms early)
    assert np.all(np.minimum(peaks % 0.25, 0.25 - peaks % 0.25) < 0.04), peaks
    # the metric's envelope, up to a few frames' offset (its padding differs; its first
    # frames are the rise out of the silence it puts in front)
    reference = metrics.onset_envelope(sharp[0])[16:-16]
    best = max(np.corrcoef(reference, flux[16 + lag:16 + lag + reference.size])[0, 1]
               for lag in range(-8, 9))
    assert best > 0.8
    same_at_half = float(onset_flux_distance(sharp, hits(0.0005, 0.5), log_mel))
    smeared = float(onset_flux_distance(sharp, hits(0.04), log_mel))
    assert smeared > 0.05 and same_at_half < 0.1 * smeared
    assert float(onset_flux_distance(sharp, sharp, log_mel)) == 0.0
