"""The training and generation commands as a user runs them: resume after kill -9, history
continuity, the original commands, and every bad argument → one line, exit 2."""

import json
import subprocess
import sys

import pytest
import soundfile as sf

from conftest import (ROOT, tiny_config as tiny, assert_one_line_error, assert_refused, chord,
                      cli, kill_after_epochs, run_cli, write_wav)
from musicrgan.runs import read_history


def test_kill_minus_nine_during_training_then_continue_keeps_history_whole(techno, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "musicrgan", "train", "new", str(run), "--model", "fft-lstm",
           "--data", str(techno), "--config", str(tiny("fft-lstm")), "--set",
           "steps_per_epoch=6", "--epochs", "200"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done = kill_after_epochs(proc, run, 3)
    assert 3 <= done < 200

    cont = run_cli("train", "continue", run, "--epochs", "2")
    assert cont.returncode == 0, cont.stderr
    history = read_history(run)
    epochs = [int(r["epoch"]) for r in history]
    assert epochs == list(range(1, done + 3)), epochs  # every epoch exactly once, in order
    assert {r["session"] for r in history} == {"1", "2"}
    assert [r["session"] for r in history][-2:] == ["2", "2"]
    assert not list(run.glob(".pending-*")) and not list(run.glob(".*.tmp*"))
    assert json.loads((run / "state.json").read_text())["epochs_done"] == done + 2


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(techno, tmp_path):
    run = tmp_path / "run"
    ok = run_cli("train", "new", run, "--model", "sample-lstm", "--data", techno, "--config",
                 tiny("sample-lstm"), "--set", "output=regression", "--epochs", "1")
    assert ok.returncode == 0, ok.stderr
    # an absurd learning rate overflows the weights within a few steps
    state = json.loads((run / "config.yaml").with_name("state.json").read_text())
    import yaml
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["config"]["learning_rate"] = 1e38
    config["config"]["steps_per_epoch"] = 30
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    from musicrgan.runs import load_model, make_family
    family = make_family(config)
    model = load_model(run / "model.keras", family)
    model.optimizer.learning_rate.assign(1e38)
    model.save(run / "model.keras")
    epoch_one = (run / "model.keras").read_bytes()
    bad = run_cli("train", "continue", run, "--epochs", "3")
    assert bad.returncode == 1, bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert "NaN" in last and "keeps epoch 1" in last and "Traceback" not in bad.stderr
    assert json.loads((run / "state.json").read_text())["epochs_done"] == state["epochs_done"] == 1
    assert [int(r["epoch"]) for r in read_history(run)] == [1]
    assert (run / "model.keras").read_bytes() == epoch_one  # the poisoned epoch not committed


def test_generate_cli_writes_wavs_at_the_model_rate_and_is_reproducible(techno, tmp_path,
                                                                         capsys):
    run = tmp_path / "run"
    # trained in this process; generated in two real ones, which must agree to the byte
    assert cli(capsys, "train", "new", run, "--model", "sample-lstm", "--data", techno,
               "--config", tiny("sample-lstm"), "--set", "sample_every=1", "--set",
               "sample_seconds=0.25", "--epochs", "1")[0] == 0
    sample = run / "samples" / "epoch_0001.wav"  # audio written during training
    assert sf.info(str(sample)).frames == 2000
    gen = lambda out, seed: run_cli("generate", run, "--n", "2", "--seconds", "0.5",  # noqa: E731
                                    "--seed", seed, "--out", out)
    a, b = gen(tmp_path / "a", 1), gen(tmp_path / "b", 1)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    files = sorted((tmp_path / "a").glob("*.wav"))
    assert len(files) == 2
    for f in files:
        info = sf.info(str(f))
        assert info.samplerate == 8000 and info.frames == 4000
        assert (f.read_bytes() == (tmp_path / "b" / f.name).read_bytes())

    prime = write_wav(tmp_path / "prime.wav", chord(0.2, 8000), 8000)
    # one bad request in a real process: one line, exit 2, no traceback
    assert_one_line_error(run_cli("generate", run, "--n", "0"), "--n")
    # the rest in this process (the same main(), seconds faster)
    refused = lambda *args, words: assert_refused(cli(capsys, *args), *words)  # noqa: E731
    refused("generate", run, "--prime", prime, "--window", "1.0",
            words=["longer than the priming file"])
    refused("generate", run, "--seconds", "-2", words=["--seconds"])
    refused("generate", tmp_path / "missing", words=["not found"])
    refused("generate", run, "--bpm", "128", words=["--bpm", "not a control of sample-lstm"])
    notmodel = tmp_path / "fake"
    notmodel.mkdir()
    (notmodel / "config.yaml").write_text((run / "config.yaml").read_text())
    (notmodel / "model.keras").write_text("this is not a model")
    refused("generate", notmodel, words=["not a Keras model"])
    refused("train", "new", tmp_path / "r2", "--model", "wavenet", "--data", techno,
            words=["unknown model family"])
    refused("train", "new", run, "--model", "fft-lstm", "--data", techno,
            words=["already holds a run"])
    refused("train", "continue", tmp_path / "none", words=["not found"])
    refused("train", "new", tmp_path / "r3", "--model", "fft-lstm", "--data", techno,
            "--set", "hiden=3", words=["unknown config key"])


def test_gan_generates_at_the_tempo_asked_or_one_it_trained_on(techno, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(capsys, "train", "new", run, "--model", "lstm-gan", "--data", techno,
               "--config", tiny("lstm-gan"), "--epochs", "1")[0] == 0
    assert (techno / "beats.json").is_file()   # the corpus's beat grids, found once
    for out, extra in (("asked", ["--bpm", "132"]), ("drawn", [])):
        status, _, err = cli(capsys, "generate", run, "--n", "2", "--seconds", "0.5", "--out",
                             tmp_path / out, *extra)
        assert status == 0, err
    asked = json.loads((tmp_path / "asked" / "index.json").read_text())["clips"]
    assert [c["bpm"] for c in asked] == [132, 132]
    assert "132" in (tmp_path / "asked" / "index.html").read_text()
    grids = json.loads((techno / "beats.json").read_text())
    train_tempos = [grid["bpm"] for name, entry in grids.items() if name.startswith("train/")
                    for grid in entry["grids"]]
    drawn = [c["bpm"] for c in json.loads((tmp_path / "drawn" / "index.json").read_text())["clips"]]
    assert all(min(train_tempos) - 0.01 <= b <= max(train_tempos) + 0.01 for b in drawn)
    assert drawn[0] != drawn[1]
    assert_refused(cli(capsys, "generate", run, "--bpm", "0", "--out", tmp_path / "x"),
                   "--bpm must be between 60 and 200")


@pytest.mark.slow  # a minute of subprocesses; their argument errors are checked below
def test_original_commands_map_onto_the_new_cli(tmp_path):
    from musicrgan.corpus.synth import synth_corpus
    techno = tmp_path / "corpus"
    synth_corpus(techno, loops=10, seconds=4, rate=8000, seed=1)
    run = tmp_path / "model"
    py = sys.executable
    new = subprocess.run([py, str(ROOT / "train_model.py"), "new", str(run), "1", str(techno)],
                         capture_output=True, text=True)
    assert new.returncode == 0, new.stderr
    cont = subprocess.run([py, str(ROOT / "train_model.py"), "continue", str(run), "1", "-"],
                          capture_output=True, text=True)
    assert cont.returncode == 0, cont.stderr
    assert [int(r["epoch"]) for r in read_history(run)] == [1, 2]
    out = tmp_path / "out"
    gen = subprocess.run([py, str(ROOT / "train_model.py"), "generate", str(run), "1", str(out)],
                         capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    assert len(list(out.glob("*.wav"))) == 1
    # the original README: generate "still requires all four args" (epochs unused) and the
    # songpath "should end in filename.wav"
    song = tmp_path / "song.wav"
    gen = subprocess.run([py, str(ROOT / "train_model.py"), "generate", str(run), "0",
                          str(song)], capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    assert song.is_file() and abs(sf.info(str(song)).duration - 10.0) < 0.01
    mm = subprocess.run([py, str(ROOT / "make_music.py"), str(run), "1024", "22050", "2",
                         str(tmp_path / "mm")], capture_output=True, text=True)
    assert mm.returncode == 0, mm.stderr
    wavs = sorted((tmp_path / "mm").glob("*.wav"))
    assert len(wavs) == 2 and all(sf.info(str(w)).samplerate == 22050 for w in wavs)
    assert all(abs(sf.info(str(w)).duration - 10.0) < 0.01 for w in wavs)
    bad = subprocess.run([py, str(ROOT / "make_music.py"), str(run), "x", "1", "1", "o"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    bad = subprocess.run([py, str(ROOT / "train_model.py"), "train", "a", "b"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_minutes_end_training_mid_epoch_and_continue_adds_another_budget(techno, tmp_path):
    """A time budget, not an epoch count, is what a user on an unknown machine can rely on:
    an epoch far too long for the budget is cut short and committed with the steps it made."""
    run = tmp_path / "run"
    new = run_cli("train", "new", run, "--model", "fft-lstm", "--data", techno, "--config",
                  tiny("fft-lstm"), "--set", "steps_per_epoch=1000000", "--minutes", "0.02")
    assert new.returncode == 0, new.stderr
    first = read_history(run)
    assert len(first) == 1 and 1 <= int(first[0]["steps"]) < 1_000_000
    cont = run_cli("train", "continue", run, "--minutes", "0.02")
    assert cont.returncode == 0, cont.stderr
    history = read_history(run)
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert 1 <= int(history[1]["steps"]) < 1_000_000
    assert_one_line_error(run_cli("train", "continue", run, "--minutes", "-1"), "--minutes")


def test_original_train_command_speaks_in_its_own_argument_names(tmp_path, capsys):
    """Errors of train_model.py name <modelpath>, <epochs>, <songpath>, never a flag of the
    new CLI the user did not type."""
    import runpy
    script = runpy.run_path(str(ROOT / "train_model.py"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("family: fft-lstm\ndata: x\nrate: 8000\n")
    for argv, name in ((["generate", str(tmp_path / "nope"), "0", "s.wav"], "<modelpath>"),
                       (["generate", str(run), "0", str(tmp_path / "no" / "s.wav")], "<songpath>"),
                       (["continue", str(run), "x", "-"], "<epochs>"),
                       (["new", str(tmp_path / "r"), "1", str(tmp_path / "none")], "<songpath>")):
        assert script["main"](argv) == 2
        err = capsys.readouterr().err
        assert name in err and "--" not in err and "Traceback" not in err, err
