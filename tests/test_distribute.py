"""Training under a device strategy (`train --strategy`): mirrored on this machine's one CPU
is the default's training, step for step; on two replicas (the CPU split in two logical
devices) each replicating family trains on a global batch; the rest are refused in a line."""

import json
import subprocess

import numpy as np
import pytest

from conftest import assert_refused, cli, start_cli, tiny_config
from musicrgan.models import FAMILIES, family_names
from musicrgan.models.base import OnLatents
from musicrgan.runs import read_history

def replicates(name: str) -> bool:
    """Whether the family, with its default config, trains on replicas."""
    return FAMILIES[name](FAMILIES[name].Config(), 16000).replicates


# the CPU as two logical devices, before TensorFlow starts: two replicas on one machine
TWO_CPUS = """
from musicrgan import import_tensorflow
tf = import_tensorflow()
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def test_mirrored_on_one_replica_trains_as_the_default_does(techno, tmp_path, capsys):
    losses = {}
    for strategy in ("default", "mirrored"):
        run = tmp_path / strategy
        status, _, err = cli(capsys, "train", "new", run, "--model", "fft-lstm", "--data", techno,
                             "--config", tiny_config("fft-lstm"), "--set", "seed=5",
                             "--epochs", "2", "--strategy", strategy)
        assert status == 0, err
        history = read_history(run)
        assert [int(r["epoch"]) for r in history] == [1, 2] and "replicas" not in history[0]
        losses[strategy] = [float(r[k]) for r in history for k in ("loss", "val_loss")]
    assert losses["mirrored"] == pytest.approx(losses["default"], rel=1e-5)


def test_families_with_their_own_training_step_are_refused_in_one_line(techno, tmp_path, capsys):
    refused = [n for n in family_names() if not replicates(n)]
    assert {"lstm-gan", "vqvae", "wave-vae"} <= set(refused) and "spec-vae" not in refused
    assert_refused(cli(capsys, "train", "new", tmp_path / "gan", "--model", "lstm-gan", "--data",
                       techno, "--config", tiny_config("lstm-gan"), "--epochs", "1",
                       "--strategy", "mirrored"), "lstm-gan", "--strategy default")
    assert_refused(cli(capsys, "train", "new", tmp_path / "vq", "--model", "spec-vae", "--data",
                       techno, "--set", "latent=vq", "--strategy", "mirrored"), "spec-vae",
                   "--strategy default")
    assert not (tmp_path / "vq").exists() and not (tmp_path / "gan").exists()
    assert_refused(cli(capsys, "train", "new", tmp_path / "w", "--model", "fft-lstm", "--data",
                       techno, "--epochs", "1", "--strategy", "multi-worker"), "multi-worker")


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in family_names() if replicates(n)])
def test_a_replicating_family_trains_on_two_replicas(name, techno, tmp_path):
    source = ["--data", techno]
    if issubclass(FAMILIES[name], OnLatents):  # on a tiny upstream, trained on one device
        first = "vqvae" if name == "code-prior" else "wave-vae"
        upstream = tmp_path / first
        proc = start_cli("", "train", "new", upstream, "--model", first, "--data", techno,
                         "--config", tiny_config(first), "--epochs", "1",
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.wait(300) == 0, proc.stderr.read()
        source = ["--upstream", upstream]
        if name == "code-prior":
            source += ["--set", "clock=true"]  # its tempo counts must add up across replicas
    run = tmp_path / name
    proc = start_cli(TWO_CPUS, "train", "new", run, "--model", name, *source, "--config",
                     tiny_config(name), "--epochs", "2", "--strategy", "mirrored",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.wait(300) == 0, proc.stderr.read()
    history = read_history(run)
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert [int(r["replicas"]) for r in history] == [2, 2]
    assert all(float(r["loss"]) == float(r["loss"]) for r in history)  # finite, not NaN
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] == 2
    if name == "code-prior":  # every replica's windows counted: 2 epochs x 3 steps x 2 x 4
        from musicrgan.runs import Run
        counts = Run(run).model("last").get_layer("clock").tempo_counts
        assert float(np.sum(np.asarray(counts))) == 2 * 3 * 2 * 4
    # the run goes on on one device (the checkpoint does not depend on the strategy)
    proc = start_cli("", "train", "continue", run, "--epochs", "1",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.wait(300) == 0, proc.stderr.read()
    assert [int(r["epoch"]) for r in read_history(run)] == [1, 2, 3]
