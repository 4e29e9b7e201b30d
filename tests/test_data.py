import numpy as np
import pytest

from conftest import chord, write_wav
from musicrgan.data import CorpusError, WindowSource, window_dataset, read_window


def test_training_windows_have_the_right_shape_and_are_deterministic_with_a_seed(techno):
    ds = window_dataset(techno, "train", 4000, 3, steps=4, seed=5)
    batches = [b.numpy() for b in ds]
    assert len(batches) == 4 and all(b.shape == (3, 4000) for b in batches)
    again = [b.numpy() for b in window_dataset(techno, "train", 4000, 3, steps=4, seed=5)]
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    # the next pass (epoch) draws other windows
    second_pass = [b.numpy() for b in ds]
    assert not np.array_equal(batches[0], second_pass[0])


def test_sequential_windows_cover_every_test_sample_once(techno):
    source = WindowSource(techno, "test", 1000)
    windows = np.concatenate([b.numpy() for b in window_dataset(techno, "test", 1000, 2, training=False)])
    assert windows.shape[0] == len(source.sequential_positions())
    whole = np.concatenate([read_window(f.path, 0, f.frames) for f in source.files])
    flat = windows.reshape(-1)
    # every sample appears, in order; only the zero padding of each file's tail is extra
    assert flat.size >= whole.size
    assert np.allclose(flat[np.abs(flat) > 0][:1000], whole[np.abs(whole) > 0][:1000], atol=1e-4)
    assert np.isclose(np.abs(flat).sum(), np.abs(whole).sum(), rtol=1e-4)


def test_validation_takes_the_first_steps_batches_in_order_on_every_pass(techno):
    every = np.concatenate([b.numpy() for b in window_dataset(techno, "test", 1000, 2,
                                                               training=False)])
    first = window_dataset(techno, "test", 1000, 2, training=False, steps=3)
    for _ in range(2):  # one pass per epoch's validation, each the same windows
        batches = [b.numpy() for b in first]
        assert len(batches) == 3 and np.array_equal(np.concatenate(batches), every[:6])


def test_train_and_test_windows_never_mix(tmp_path):
    # train files are all +0.5 DC, test files all -0.5: a mixed window would show a sign change
    for i in range(3):
        write_wav(tmp_path / "train" / f"a{i}.wav", np.full(3000, 0.5, np.float32), 8000)
        write_wav(tmp_path / "test" / f"b{i}.wav", np.full(3000, -0.5, np.float32), 8000)
    train = np.concatenate([b.numpy() for b in window_dataset(tmp_path, "train", 500, 4, steps=20)])
    test = np.concatenate([b.numpy() for b in window_dataset(tmp_path, "test", 500, 4, training=False)])
    assert (train > 0).all() and (test < 0).all()


def test_short_files_are_skipped_or_padded_and_errors_say_what_to_do(tmp_path):
    write_wav(tmp_path / "train" / "short.wav", chord(0.25, 8000), 8000)
    write_wav(tmp_path / "train" / "long.wav", chord(1.0, 8000), 8000)
    assert len(WindowSource(tmp_path, "train", 4000).files) == 1
    assert len(WindowSource(tmp_path, "train", 4000, pad_short=True).files) == 2
    with pytest.raises(CorpusError, match=r"window of 16000 samples.*longest is 8000 samples"):
        WindowSource(tmp_path, "train", 16000)
    with pytest.raises(CorpusError, match="fewer than one batch of 8"):
        window_dataset(tmp_path, "train", 4000, 8)
    with pytest.raises(CorpusError, match="no wav files"):
        WindowSource(tmp_path, "test", 100)
    with pytest.raises(CorpusError, match="not found"):
        WindowSource(tmp_path / "nope", "train", 100)
    padded = next(iter(window_dataset(tmp_path, "train", 4000, 2, pad_short=True, seed=0)))
    assert padded.shape == (2, 4000)
