"""The family contract, over every registered family: a family is covered by registering it
and giving it a tiny preset (configs/tiny-NAME.yaml). Through the real command line, its
tiny config trains one epoch; the run saves and loads to identical weights (safe mode) and
keeps its optimizer's state; and the family does what its capabilities say: a family that
`Generates` writes songs of the length asked, the same for the same seed, with exactly the
controls it declares; a family that `Encodes` gives latents that decode to audio of the
input's shape; and `musicrgan export` writes what it declares in every format, each of
which computes what the Keras network does (the fast suite runs each format once, the
slow suite every family in every format)."""

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import assert_refused, cli, tiny_config
from musicrgan import import_tensorflow
from musicrgan.models import family_names
from musicrgan.models import FAMILIES
from musicrgan.export import FORMATS
from musicrgan.models.base import Encodes, GenerationRequest, Generates, OnLatents
from musicrgan.runs import Run, read_history

import_tensorflow()
import keras  # noqa: E402


@pytest.fixture(scope="module")
def trained(techno, tmp_path_factory):
    """name → the folder of a tiny run of that family trained one epoch through the command
    line (made once, at first use); a second stage on the first upstream it accepts."""
    from musicrgan.cli import main
    runs = {}

    def train(name):
        if name not in runs:
            source = ["--data", str(techno)]
            if issubclass(FAMILIES[name], OnLatents):
                family = FAMILIES[name](FAMILIES[name].Config(), 16000)
                fits = [up for up in family_names() if issubclass(FAMILIES[up], Encodes)
                        and not issubclass(FAMILIES[up], OnLatents)
                        and family.accepts(FAMILIES[up](FAMILIES[up].Config(), 16000)) is None]
                assert fits, f"no registered family encodes what {name} trains on"
                source = ["--upstream", str(train(fits[0]))]
            folder = tmp_path_factory.mktemp("run") / name
            assert main(["train", "new", str(folder), "--model", name, *source,
                         "--config", str(tiny_config(name)), "--epochs", "1"]) == 0
            runs[name] = folder
        return runs[name]
    return train


def test_every_family_has_a_tiny_preset_and_a_capability():
    for name in family_names():
        assert tiny_config(name).is_file(), f"configs/tiny-{name}.yaml is missing"
        assert issubclass(FAMILIES[name], (Generates, Encodes)), f"{name} can do nothing"


@pytest.mark.parametrize("name", family_names())
def test_family_trains_saves_loads_and_does_what_it_declares(name, tmp_path, capsys, trained):
    folder = trained(name)
    capsys.readouterr()  # training's progress, if it trained just now
    run = Run(folder)
    assert run.state["epochs_done"] == 1 and [int(r["epoch"]) for r in read_history(folder)] == [1]
    for f in ("config.yaml", "model.keras", "best.keras", "state.json", "history.csv"):
        assert (folder / f).is_file(), f

    model = run.model("last")
    assert run.model("last") is model  # loaded once, kept
    again = keras.saving.load_model(folder / "model.keras", safe_mode=True)
    assert len(model.weights) == len(again.weights) > 0
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the checkpoint carries the optimizer's state: one step per batch, no more
    assert int(model.optimizer.iterations) == run.family.config.steps_per_epoch

    family = run.family
    if isinstance(family, Generates):
        out = tmp_path / "songs"
        status, printed, err = cli(capsys, "generate", folder, "--n", "2", "--seconds", "0.5",
                                   "--out", out, "--quiet")
        assert status == 0, err
        songs = [sf.read(line)[0] for line in printed.split()]
        assert [s.shape for s in songs] == [(family.rate // 2,)] * 2
        assert all(np.isfinite(s).all() and np.abs(s).max() <= 1.0 for s in songs)
        assert not np.array_equal(songs[0], songs[1])  # the songs of a batch differ

        from musicrgan.generate import generate_clips
        request = GenerationRequest(n=2, seconds=0.25, seed=5)
        first, _, _ = generate_clips(run, request, progress=False)
        same, _, _ = generate_clips(run, request, progress=False)
        other, _, _ = generate_clips(run, GenerationRequest(n=2, seconds=0.25, seed=6),
                                     progress=False)
        np.testing.assert_array_equal(first, same)
        assert not np.array_equal(first, other)

        # generate offers every family's controls; a run refuses those its family lacks
        status, help_text, _ = cli(capsys, "generate", "--help")
        assert status == 0
        own = {c.name for c in family.controls()}
        from musicrgan.cli import _controls, flag
        for control in own:
            assert flag(control) in help_text
        for control in set(_controls()) - own:
            assert_refused(cli(capsys, "generate", folder, "--out", out, flag(control), "100"),
                           flag(control), "not a control")

    if isinstance(family, Encodes):
        audio = np.random.default_rng(0).uniform(-0.5, 0.5, (2, family.window()))
        latents = family.encode(model, audio.astype("float32"))
        assert latents.shape[0] == 2 and latents.ndim >= 2
        np.testing.assert_array_equal(latents, family.encode(model, audio.astype("float32")))
        decoded = family.decode(model, latents)
        assert decoded.shape[0] == 2 and decoded.shape[1] >= audio.shape[1]
        assert np.isfinite(decoded).all()
        assert family.reconstruct(model, audio.astype("float32")).shape == audio.shape



# each format once in the fast suite, on a family whose export converts in seconds (the
# two-stage families' take 20-45 s: they carry their upstream's decoder too)
FAST_EXPORTS = {"saved_model": "sample-lstm", "onnx": "spec-vae", "litert": "fft-lstm"}


def _export_cases():
    """Every family in every format; the fast suite runs FAST_EXPORTS (the slow suite,
    which CI runs too, runs them all)."""
    for name in family_names():
        for fmt in FORMATS:
            fast = FAST_EXPORTS[fmt] == name
            yield pytest.param(name, fmt, marks=() if fast else pytest.mark.slow,
                               id=f"{name}-{fmt}")


@pytest.mark.parametrize("name, fmt", list(_export_cases()))
def test_export_computes_what_the_network_does(name, fmt, tmp_path, capsys, trained):
    folder = trained(name)
    capsys.readouterr()
    run = Run(folder)
    family = run.family
    out = tmp_path / f"export-{fmt}"
    result = cli(capsys, "export", folder, "--format", fmt, "--out", out)
    if family.cannot_export(fmt):  # said in one line, nothing written
        assert_refused(result, f"{fmt} cannot carry {family.name}")
        assert not (out / "export.json").exists()
        return
    status, printed, err = result
    assert status == 0, err
    manifest = json.loads((out / "export.json").read_text())
    networks = family.exports(run.model("best"))
    assert set(manifest["networks"]) == set(networks) and manifest["format"] == fmt
    for network_name, network in networks.items():
        described = manifest["networks"][network_name]
        assert str(out / described["file"]) in printed
        feeds = example_inputs(network)
        expected = network(feeds if len(feeds) > 1 else feeds[0])
        expected = [np.asarray(e) for e in (expected if isinstance(expected, list)
                                             else [expected])]
        got = run_exported(fmt, out / described["file"], described, feeds)
        assert [g.shape for g in got] == [e.shape for e in expected]
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-4)


def example_inputs(network) -> list:
    """An input for each of the network's: two rows, 128 steps where a length is free
    (a multiple of the tiny autoencoder's samples per code), small ints for tokens."""
    rng = np.random.default_rng(1)
    feeds = []
    for tensor in network.inputs:
        shape = [2] + [128 if d is None else d for d in tensor.shape[1:]]
        feeds.append(rng.integers(0, 4, shape).astype("int32") if "int" in str(tensor.dtype)
                     else (0.3 * rng.standard_normal(shape)).astype("float32"))
    return feeds


def run_exported(fmt: str, path, described: dict, feeds: list) -> list:
    """The exported network's outputs for `feeds`, in export.json's order, run by the
    runtime each format is for."""
    names = [t["name"] for t in described["inputs"]]
    if fmt == "saved_model":
        import tensorflow as tf
        loaded = tf.saved_model.load(str(path))  # kept: its variables live as long as it
        served = loaded.serve(feeds if len(feeds) > 1 else feeds[0])
        return [np.asarray(t) for t in (served if isinstance(served, (list, tuple)) else [served])]
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(str(path))
        assert [i.name for i in session.get_inputs()] == names
        return session.run(None, dict(zip(names, feeds)))
    from ai_edge_litert.interpreter import Interpreter
    runner = Interpreter(model_path=str(path)).get_signature_runner()
    results = runner(**dict(zip(names, feeds)))
    return [results[f"output_{i}"] for i in range(len(described["outputs"]))]


def test_export_needs_its_converter_and_says_which(tmp_path, capsys, monkeypatch, trained):
    folder = trained("sample-lstm")
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    assert_refused(cli(capsys, "export", folder, "--format", "onnx", "--out", tmp_path / "x"),
                   "needs the tf2onnx", "pip install")
    assert not (tmp_path / "x").exists()
