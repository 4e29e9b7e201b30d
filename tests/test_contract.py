"""The family contract, over every registered family: a family is covered by registering it
and giving it a tiny preset (configs/tiny-NAME.yaml). Through the real command line, its
tiny config trains one epoch; the run saves and loads to identical weights (safe mode) and
keeps its optimizer's state; and the family does what its capabilities say: a family that
`Generates` writes songs of the length asked, the same for the same seed, with exactly the
controls it declares; a family that `Encodes` gives latents that decode to audio of the
input's shape."""

import numpy as np
import pytest
import soundfile as sf

from conftest import assert_refused, cli, tiny_config
from musicrgan import import_tensorflow
from musicrgan.models import family_names
from musicrgan.models import FAMILIES
from musicrgan.models.base import Encodes, GenerationRequest, Generates, OnLatents
from musicrgan.runs import Run, read_history

import_tensorflow()
import keras  # noqa: E402


@pytest.fixture(scope="module")
def upstreams(techno, tmp_path_factory):
    """A tiny run of every family that encodes, for the second stages to train on."""
    from musicrgan.cli import main
    runs = {}
    for name in family_names():
        if issubclass(FAMILIES[name], Encodes):
            folder = tmp_path_factory.mktemp("upstream") / name
            assert main(["train", "new", str(folder), "--model", name, "--data", str(techno),
                         "--config", str(tiny_config(name)), "--epochs", "1"]) == 0
            runs[name] = folder
    return runs


def test_every_family_has_a_tiny_preset_and_a_capability():
    for name in family_names():
        assert tiny_config(name).is_file(), f"configs/tiny-{name}.yaml is missing"
        assert issubclass(FAMILIES[name], (Generates, Encodes)), f"{name} can do nothing"


@pytest.mark.parametrize("name", family_names())
def test_family_trains_saves_loads_and_does_what_it_declares(name, techno, tmp_path, capsys,
                                                              upstreams):
    folder = tmp_path / "run"
    source = ["--data", techno]
    if issubclass(FAMILIES[name], OnLatents):  # a second stage: on the first upstream it takes
        family = FAMILIES[name](FAMILIES[name].Config(), 16000)
        fits = [run for up, run in upstreams.items()
                if family.accepts(FAMILIES[up](FAMILIES[up].Config(), 16000)) is None]
        assert fits, f"no registered family encodes what {name} trains on"
        source = ["--upstream", fits[0]]
    status, _, err = cli(capsys, "train", "new", folder, "--model", name, *source,
                         "--config", tiny_config(name), "--epochs", "1")
    assert status == 0, err
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
