"""lstm-gan training steps per second, the demo's family: today's train step against the
step as it was before the issue-9 speed work (commit BASELINE's lstm_gan.py, loaded from git
into this process), same corpus, same data pipeline, same `fit` call; and where a step's
time goes (the pieces timed alone).

    python bench/bench_train_gan.py [--steps 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, ROOT, save  # noqa: E402

from musicrgan import import_tensorflow  # noqa: E402
from musicrgan.corpus.synth import synth_corpus  # noqa: E402
from musicrgan.data import window_dataset  # noqa: E402
from musicrgan.models import FAMILIES, get_family  # noqa: E402

tf = import_tensorflow()
import keras  # noqa: E402

BASELINE = "37aea49"  # main before issue 9: three discriminator passes, two generator passes
MOVED = {"from ..features import": "from ..modules.features import",
         "from ..evaluate import corpus_clips": "from ..data import corpus_clips"}


def baseline_family():
    """The lstm-gan family as it was at BASELINE, without disturbing today's registrations."""
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BASELINE}:src/musicrgan/models/lstm_gan.py"],
            capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"bench_train_gan needs the git history (commit {BASELINE}): {exc}")
    for old, new in MOVED.items():  # shared parts that moved into the modules layer since
        source = source.replace(old, new)
    families, custom = dict(FAMILIES), dict(keras.saving.get_custom_objects())
    module = types.ModuleType("musicrgan.models._lstm_gan_baseline")
    module.__package__ = "musicrgan.models"
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"lstm_gan.py@{BASELINE}", "exec"), module.__dict__)
    FAMILIES.clear(), FAMILIES.update(families)
    keras.saving.get_custom_objects().clear(), keras.saving.get_custom_objects().update(custom)
    return module.LSTMGANFamily


def steps_per_second(family, corpus, steps):
    c = family.config
    model = family.build()
    data = window_dataset(corpus, "train", family.window(), c.batch_size, steps=10**6, seed=0,
                          beats=family.uses_beats).map(family.examples)
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # tracing is not throughput
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps / (time.perf_counter() - started), model


def pieces(model, family):
    """Milliseconds of the parts of a step, each alone (compiled, batch of the config)."""
    c = family.config
    real = tf.random.normal((c.batch_size, family.window())) * 0.2
    beats = tf.constant(np.tile([[130.0, 0.0]], (c.batch_size, 1)), tf.float32)
    noise = tf.random.normal((c.batch_size, c.seq_len, c.noise_dim))

    def generator():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model.generate_audio(noise, beats, training=True) ** 2)
        return tape.gradient(loss, model.generator.trainable_variables)

    def critic():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model.critic(tf.concat([real] * 3, 0),
                                               tf.concat([beats] * 3, 0), training=True))
        return tape.gradient(loss, model.discriminator.trainable_variables)

    def feature_statistics():
        return model._band_statistics(real)

    times = {}
    for name, fn in (("generator_forward_backward_ms", generator),
                     ("discriminator_forward_backward_3_batches_ms", critic),
                     ("feature_matching_statistics_ms", feature_statistics)):
        fn = tf.function(fn)
        fn(), fn()
        started = time.perf_counter()
        for _ in range(10):
            fn()
        times[name] = round((time.perf_counter() - started) * 100, 1)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    corpus = OUT / "techno"
    synth_corpus(corpus, loops=16, seconds=8, rate=16000, seed=0)
    ours_cls = get_family("lstm-gan")
    ours = ours_cls(ours_cls.Config(), 16000)
    old_cls = baseline_family()
    old = old_cls(old_cls.Config(), 16000)

    windows = window_dataset(corpus, "train", ours.window(), ours.config.batch_size,
                             steps=10**6, seed=0, beats=True)
    iterator = iter(windows)
    next(iterator)
    started = time.perf_counter()
    for _ in range(args.steps):
        next(iterator)
    data_steps = args.steps / (time.perf_counter() - started)

    baseline, _ = steps_per_second(old, corpus, args.steps)
    today, model = steps_per_second(ours, corpus, args.steps)
    save("train_gan", {
        "baseline_commit": BASELINE, "batch": ours.config.batch_size,
        "window_seconds": ours.window() / 16000, "steps": args.steps,
        "baseline_steps_per_s": round(baseline, 2), "ours_steps_per_s": round(today, 2),
        "speedup": round(today / baseline, 2),
        "data_pipeline_batches_per_s": round(data_steps, 1),
        **pieces(model, ours),
    })


if __name__ == "__main__":
    main()
