"""Damaged files, bad requests, interruptions and two commands at once (issue 14): always
one line saying what is wrong and what to do, exit status 2 for the user's mistakes,
nothing lost, no hang. Most checks call the real command line in this process (it is
`musicrgan.cli.main`, parser and all); signals and concurrency use real subprocesses."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import (tiny_config as tiny, run_cli, assert_one_line_error, cli, assert_refused,
                      start_cli, wait_until)
from musicrgan.locks import folder_lock
from musicrgan.runs import read_history


@pytest.fixture
def run(techno, tmp_path, capsys):
    """A tiny fft-lstm run of two epochs, its own copy for each test."""
    folder = tmp_path / "run"
    status, _, err = cli(capsys, "train", "new", folder, "--model", "fft-lstm", "--data", techno,
                         "--config", tiny("fft-lstm"), "--epochs", "2")
    assert status == 0, err
    return folder


@pytest.mark.parametrize("damage", ["", '{"epochs_done": 2, "hist', '[1, 2, "x"]'])
def test_damaged_state_is_named_and_repair_rebuilds_it(run, capsys, damage):
    (run / "state.json").write_text(damage)
    for command in (["train", "continue", run, "--epochs", "1"],
                    ["generate", run, "--n", "1", "--seconds", "0.2", "--out", run / "o"],
                    ["evaluate", run, "--n", "2", "--seconds", "0.5", "--quiet"]):
        assert_refused(cli(capsys, *command), "state.json", "--repair")
    status, _, err = cli(capsys, "train", "continue", run, "--epochs", "1", "--repair")
    assert status == 0, err
    assert [int(r["epoch"]) for r in read_history(run)] == [1, 2, 3]


def test_damaged_config_names_the_file_and_the_key(run, capsys, techno, tmp_path):
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "family": "bogus-net"}))
    assert_refused(cli(capsys, "train", "continue", run), "config.yaml", "bogus-net", "fft-lstm")
    (run / "config.yaml").write_text(yaml.safe_dump(
        {**config, "config": {**config["config"], "batch_size": "abc"}}))
    assert_refused(cli(capsys, "generate", run, "--out", tmp_path / "o"),
                   "config.yaml", "batch_size", "whole number", "'abc'")
    (run / "config.yaml").write_text(": : not yaml [")
    assert_refused(cli(capsys, "evaluate", run), "config.yaml", "damaged")
    assert_refused(cli(capsys, "train", "new", tmp_path / "r2", "--model", "fft-lstm",
                       "--data", techno, "--set", "batch_size=abc"),
                   "batch_size", "whole number", "'abc'")
    assert not (tmp_path / "r2").exists()


def test_damaged_last_checkpoint_offers_best_and_from_best_works(run, capsys):
    (run / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    assert_refused(cli(capsys, "train", "continue", run, "--epochs", "1"),
                   "model.keras", "--from best")
    status, _, err = cli(capsys, "train", "continue", run, "--epochs", "1", "--from", "best")
    assert status == 0, err
    assert [int(r["epoch"]) for r in read_history(run)] == [1, 2, 3]


def test_a_damaged_wav_or_manifest_is_skipped_with_a_warning(techno, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(techno, corpus)
    (corpus / "train" / "x.wav").write_text("this is not audio")
    (corpus / "manifest.jsonl").write_bytes(os.urandom(2000) + b"\n" + os.urandom(100))
    status, out, err = cli(capsys, "info", corpus)
    assert status == 0 and "Traceback" not in err
    assert "x.wav" in out and "unreadable: 1" in out
    assert "manifest.jsonl" in err
    status, _, err = cli(capsys, "train", "new", tmp_path / "r", "--model", "fft-lstm",
                         "--data", corpus, "--config", tiny("fft-lstm"), "--epochs", "1")
    assert status == 0, err  # (each damaged file is warned about once per process)
    status, _, err = cli(capsys, "evaluate", tmp_path / "r", "--n", "2", "--seconds", "0.5",
                         "--quiet")
    assert status == 0, err


def test_corpus_without_test_split_and_refused_corpus_leave_nothing(techno, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(techno, corpus)
    shutil.rmtree(corpus / "test")
    run = tmp_path / "r"
    # a corpus train new refuses (no test split to validate on) leaves no run folder
    assert_refused(cli(capsys, "train", "new", run, "--model", "fft-lstm", "--data", corpus,
                       "--config", tiny("fft-lstm")), "test split")
    assert not run.exists()
    status, _, err = cli(capsys, "train", "new", run, "--model", "fft-lstm", "--data", techno,
                         "--config", tiny("fft-lstm"), "--epochs", "1")
    assert status == 0, err
    assert_refused(cli(capsys, "evaluate", run, "--data", corpus), "no test split")


def test_output_paths_that_are_files_or_unwritable(run, techno, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_refused(cli(capsys, "generate", run, "--n", "1", "--seconds", "0.2", "--out", afile),
                   "afile", "is a file")
    assert_refused(cli(capsys, "train", "new", afile, "--model", "fft-lstm", "--data", techno),
                   "afile", "is a file")
    assert_refused(cli(capsys, "synth", afile, "--loops", "1", "--quiet"), "is a file")
    assert_refused(cli(capsys, "convert", techno / "train", afile, "--quiet"), "is a file")
    assert_refused(cli(capsys, "synth", "/proc/musicrgan-corpus", "--loops", "1"), "cannot")
    assert_refused(cli(capsys, "generate", run, "--n", "1", "--seconds", "0.2", "--out",
                       "/proc/musicrgan-out"), "cannot")


def test_generation_requests_beyond_the_limits_are_refused_up_front(run, tmp_path, capsys):
    out = tmp_path / "o"
    assert_refused(cli(capsys, "generate", run, "--n", "100000", "--seconds", "1", "--out", out),
                   "--n", "1000")
    assert_refused(cli(capsys, "generate", run, "--n", "1", "--seconds", "1e9", "--out", out),
                   "--seconds", "600")
    assert_refused(cli(capsys, "generate", run, "--temperature", "-1", "--out", out),
                   "--temperature")
    assert not out.exists()  # refused before anything was made


def test_a_new_batch_never_overwrites_and_the_index_follows_the_files(run, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / ".run_fft-lstm_seed0_1.abc.tmp").write_bytes(b"half a wav")  # a killed generate's
    for _ in range(2):
        status, _, err = cli(capsys, "generate", run, "--n", "2", "--seconds", "0.3", "--out",
                             out, "--quiet")
        assert status == 0, err
    wavs = sorted(p.name for p in out.glob("*.wav"))
    assert wavs == ["run_fft-lstm_seed0-2_1.wav", "run_fft-lstm_seed0-2_2.wav",
                    "run_fft-lstm_seed0_1.wav", "run_fft-lstm_seed0_2.wav"]
    listed = sorted(c["file"] for c in json.loads((out / "index.json").read_text())["clips"])
    assert listed == wavs and not list(out.glob(".*.tmp"))


def test_ctrl_c_during_training_exits_at_once_and_the_run_resumes(techno, tmp_path):
    run = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "musicrgan", "train", "new", run, "--model", "fft-lstm",
         "--data", techno, "--config", tiny("fft-lstm"), "--set", "steps_per_epoch=20",
         "--epochs", "500"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=os.environ | {"PYTHONFAULTHANDLER": "1"})   # a crash's stacks, should one come
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "state.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)  # it hung for 10 minutes before
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert proc.returncode == 130 and "Traceback" not in err, err[-4000:]
    done = json.loads((run / "state.json").read_text())["epochs_done"]
    assert f"musicrgan train: interrupted: {run} keeps epoch " in err
    cont = run_cli("train", "continue", run, "--epochs", "1")
    assert cont.returncode == 0, cont.stderr
    assert [int(r["epoch"]) for r in read_history(run)] == list(range(1, done + 2))


def interrupt_when(proc, ready, timeout=120):
    """Ctrl-C as a terminal sends it, to the whole process group (convert's workers too),
    once ready() holds; the exit status and stderr."""
    deadline = time.time() + timeout
    while time.time() < deadline and not ready():
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err


@pytest.fixture(scope="module")
def mp3s(tmp_path_factory):
    """16 minute-long mp3s: enough work for a convert to be stopped half-way."""
    from conftest import chord, encode
    folder = tmp_path_factory.mktemp("mp3s")
    for i in range(16):
        encode(folder / f"s{i}.mp3", chord(60, 22050, amp=0.2), 22050)
    return folder


def start_convert(mp3s, out, jobs):
    return subprocess.Popen([sys.executable, "-m", "musicrgan", "convert", mp3s, out, "--jobs",
                             str(jobs)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def test_ctrl_c_during_convert_exits_at_once_and_rerunning_finishes(mp3s, tmp_path):
    import soundfile as sf
    from musicrgan.audio import FILE_MODE
    out = tmp_path / "corpus"
    status, err = interrupt_when(start_convert(mp3s, out, 2), lambda: any(out.rglob("*.wav")))
    assert status == 130 and "Traceback" not in err and "interrupted" in err, err
    kept = list(out.rglob("*.wav"))
    assert 0 < len(kept) < 16 and all(sf.info(str(p)).duration == 60 for p in kept)
    assert all(os.stat(p).st_mode & 0o777 == FILE_MODE for p in kept)  # not mkstemp's 0600
    again = run_cli("convert", mp3s, out)  # the files converted in hand are kept, not redone
    assert again.returncode == 0, again.stderr
    assert f"converted {16 - len(kept)}; unchanged {len(kept)}" in again.stdout


def test_kill_minus_nine_during_convert_and_the_next_convert_finishes(mp3s, tmp_path):
    """The killed convert's workers exit with it (they share its folder lock): the next
    convert, started at once, is not refused as busy and finishes the corpus."""
    out = tmp_path / "corpus"
    proc = start_convert(mp3s, out, 2)
    deadline = time.time() + 120
    while time.time() < deadline and not any(out.rglob("*.wav")):
        time.sleep(0.01)
    proc.kill(), proc.wait()
    again = run_cli("convert", mp3s, out)
    assert again.returncode == 0, again.stderr
    assert len(list(out.rglob("*.wav"))) == 16 and not list(out.rglob(".*.tmp"))
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 16


def generate_in_groups_of_one(run, out, **popen):
    """200 short songs written a group of one at a time (a patched group size), in a process
    of its own: a generate long enough to interrupt."""
    return start_cli("import musicrgan.generate as g; g.GROUP_SAMPLES = 2000", "generate", run,
                     "--n", "200", "--seconds", "0.25", "--out", out, "--quiet",
                     stdout=subprocess.DEVNULL, **popen)


def test_ctrl_c_during_generate_exits_at_once_and_keeps_an_index_of_whole_files(run, tmp_path):
    import soundfile as sf
    out = tmp_path / "o"
    proc = generate_in_groups_of_one(run, out, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
    status, err = interrupt_when(proc, lambda: len(list(out.glob("*.wav"))) >= 3)
    assert status == 130 and "Traceback" not in err and "interrupted" in err, err
    listed = {c["file"] for c in json.loads((out / "index.json").read_text())["clips"]}
    assert listed == {p.name for p in out.glob("*.wav")}  # the group in hand was finished
    assert 3 <= len(listed) < 200 and all(sf.info(str(out / f)).frames == 2000 for f in listed)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_one_process_at_a_time_per_run_and_per_corpus(run, techno, tmp_path):
    with folder_lock(run, "training"):  # this test process holds the run, as a trainer would
        second = run_cli("train", "continue", run, "--epochs", "1")
    assert_one_line_error(second, "busy", str(os.getpid()))
    # the lock of a process that died is taken over: a killed trainer's is released
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; "
                               "from musicrgan.locks import folder_lock; "
                               f"lock = folder_lock({str(run)!r}, 'training'); lock.__enter__(); "
                               "print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill(), holder.wait()
    assert run_cli("train", "continue", run, "--epochs", "1").returncode == 0
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with folder_lock(corpus, "converting into"):
        second = run_cli("convert", techno / "train", corpus, "--quiet")
    assert_one_line_error(second, "busy", str(os.getpid()))


def test_kill_minus_nine_during_generate_leaves_an_index_of_whole_files(run, tmp_path):
    """Songs are written group by group; a killed generate leaves no wav that index.json does
    not list, every listed song whole (or staged whole, waiting for its rename), and the next
    generate finishes or cleans what the killed one left. (Groups of one song here, by
    patching the group size, so a short test has many.)"""
    import soundfile as sf
    out = tmp_path / "o"
    proc = generate_in_groups_of_one(run, out, stderr=subprocess.DEVNULL)
    wait_until(lambda: len(list(out.glob("*.wav"))) >= 3)
    proc.kill(), proc.wait()
    listed = [c["file"] for c in json.loads((out / "index.json").read_text())["clips"]]
    assert 0 < len(listed) < 200
    assert {p.name for p in out.glob("*.wav")} <= set(listed)  # no wav the index doesn't know
    for name in listed:
        staged = out / f".{name}.staged"
        assert sf.info(str(out / name if (out / name).exists() else staged)).frames == 2000
    status = run_cli("generate", run, "--n", "1", "--seconds", "0.25", "--out", out, "--quiet")
    assert status.returncode == 0, status.stderr
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    after = {c["file"] for c in json.loads((out / "index.json").read_text())["clips"]}
    assert after == {p.name for p in out.glob("*.wav")}
    assert set(listed) <= after and "run_fft-lstm_seed0-2_1.wav" in after


def test_a_group_killed_after_its_listing_is_finished_by_the_next_generate(run, tmp_path,
                                                                           capsys):
    """The one window left open by staging: killed between writing index.json and renaming
    the group's wavs into place. The next generate renames the listed ones, drops the rest."""
    out = tmp_path / "o"
    assert cli(capsys, "generate", run, "--n", "2", "--seconds", "0.25", "--out", out,
               "--quiet")[0] == 0
    first = out / "run_fft-lstm_seed0_1.wav"
    first.rename(out / f".{first.name}.staged")  # listed, not yet renamed
    (out / ".unlisted_9.wav.staged").write_bytes(first.with_name("run_fft-lstm_seed0_2.wav")
                                                  .read_bytes())
    assert cli(capsys, "generate", run, "--n", "1", "--seconds", "0.25", "--out", out,
               "--quiet")[0] == 0
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".wav" or
                  p.name.startswith(".")) == ["run_fft-lstm_seed0-2_1.wav",
                                              "run_fft-lstm_seed0_1.wav",
                                              "run_fft-lstm_seed0_2.wav"]


def test_a_ctrl_c_that_surfaces_as_another_error_is_still_an_interrupt(run, tmp_path):
    """A Ctrl-C landing while TensorFlow traces a function came out as a SystemError (from
    inside its C code), with a traceback. After a Ctrl-C, whatever error follows is the
    interrupt's: one line, status 130."""
    code = ("import os, signal, sys, time; import musicrgan.generate as g\n"
            "def interrupted_inside_c(*args, **kwargs):\n"
            "    try:\n        os.kill(os.getpid(), signal.SIGINT); time.sleep(5)\n"
            "    except KeyboardInterrupt:\n"
            "        raise SystemError('bad argument to internal function')\n"
            "g.generate = interrupted_inside_c\nfrom musicrgan.cli import main\n"
            f"sys.exit(main(['generate', {str(run)!r}, '--out', {str(tmp_path / 'o')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "musicrgan generate: interrupted"
