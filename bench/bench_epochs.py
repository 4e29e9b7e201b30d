"""Wall seconds per training epoch through `fit`, with the datasets as `musicrgan.data`
makes them today (tf.data's autotuning off; each pass's window generator ends by itself)
against the way before (autotuning on, tf.data's default; endless generators cut by
`Dataset.take`), and the way before with autotuning off, same model, same corpus, same
process. Destroying a finished epoch's iterator waited on tf.data's autotuning thread: the
machine idle, training stalled 2.6 s in short epochs and 15-40 s in minute-long ones, at
random epochs (docs/architecture.md, "Idle seconds between epochs"). Many short epochs (2
steps of batch 8, 1 validation batch) make many iterators; model: wave-vae's default config,
untrained; a synthesized corpus of 24 loops of 4 s at 16 kHz (6 test loops). A stall: an
epoch longer than twice the median."""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicrgan import import_tensorflow  # noqa: E402
from musicrgan.corpus.synth import synth_corpus  # noqa: E402
from musicrgan.data import WindowSource, batched, window_dataset  # noqa: E402
from musicrgan.models import get_family  # noqa: E402

RATE, BATCH = 16000, 8
STEPS, VALIDATION_STEPS = 2, 1


def datasets_before(corpus: Path, window: int, seed: int, autotune: bool = True):
    """The pipeline before: endless generators cut by take, autotuning on."""
    tf = import_tensorflow()
    train_source = WindowSource(corpus, "train", window)
    test_source = WindowSource(corpus, "test", window)
    spec = tf.TensorSpec(shape=(window,), dtype=tf.float32)
    passes = itertools.count()

    def windows():
        yield from train_source.random_windows([seed, next(passes)])

    train = tf.data.Dataset.from_generator(windows, output_signature=spec).take(STEPS * BATCH)
    val = tf.data.Dataset.from_generator(test_source.sequential_windows, output_signature=spec)
    return (batched(train, BATCH, STEPS, True, autotune=autotune),
            batched(val, BATCH, None, True, autotune=autotune).take(VALIDATION_STEPS))


def datasets_before_without_autotune(corpus: Path, window: int, seed: int):
    return datasets_before(corpus, window, seed, autotune=False)


def datasets_today(corpus: Path, window: int, seed: int):
    return (window_dataset(corpus, "train", window, BATCH, steps=STEPS, seed=seed),
            window_dataset(corpus, "test", window, BATCH, training=False,
                           steps=VALIDATION_STEPS))


def epoch_seconds(family, datasets, epochs: int) -> list[float]:
    import keras
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    model = family.build()
    train, val = datasets
    model.fit(train, validation_data=val, epochs=epochs, verbose=0, callbacks=[Clock()])
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--only", choices=["before", "before_without_autotune", "today"])
    args = ap.parse_args()
    cls = get_family("wave-vae")
    family = cls(cls.Config(batch_size=BATCH), RATE)
    result = {"epochs": args.epochs, "steps_per_epoch": STEPS,
              "validation_steps": VALIDATION_STEPS}
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus"
        synth_corpus(corpus, loops=24, seconds=4.0, rate=RATE, seed=0, test_fraction=0.25)
        for name, make in (("before", datasets_before),
                           ("before_without_autotune", datasets_before_without_autotune),
                           ("today", datasets_today)):
            if args.only and name != args.only:
                continue
            times = epoch_seconds(family, make(corpus, family.window(), 0), args.epochs)
            later = times[1:]  # the first epoch traces the step
            result[f"{name}_epochs"] = len(later)
            median = statistics.median(later)
            result[f"{name}_epoch_s_mean"] = round(statistics.mean(later), 2)
            result[f"{name}_epoch_s_median"] = round(median, 2)
            result[f"{name}_epoch_s_max"] = round(max(later), 2)
            result[f"{name}_stalls"] = sum(t > 2 * median for t in later)
    if not args.only:
        result["epochs_per_minute_today_over_before"] = round(
            result["before_epoch_s_mean"] / result["today_epoch_s_mean"], 2)
    save("epochs", result)
    print(result)


if __name__ == "__main__":
    main()
