import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import ROOT, assert_one_line_error, assert_refused, chord, cli, encode, run_cli, write_wav
from musicrgan.corpus.convert import convert
from musicrgan.corpus.manifest import read_jsonl


def unsupported_codec_wav(path: Path) -> Path:
    """A RIFF/WAVE file whose format tag (0x7A7A) no decoder knows."""
    data = os.urandom(32000)
    fmt = struct.pack("<HHIIHH", 0x7A7A, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def make_messy_folder(root: Path) -> dict:
    good = {
        "plain.wav": write_wav(root / "plain.wav", chord(2, 22050), 22050),
        "stereo 44k.flac": encode(root / "stereo 44k.flac", chord(2, 44100), 44100, channels=2),
        "sub/ogg file.ogg": encode(root / "sub" / "ogg file.ogg", chord(2, 44100), 44100),
        "sub/mp3 é ü.mp3": encode(root / "sub" / "mp3 é ü.mp3", chord(2, 44100), 44100),
        "deep/er/aac.m4a": encode(root / "deep" / "er" / "aac.m4a", chord(2, 44100), 44100),
        "voice.opus": encode(root / "voice.opus", chord(2, 48000), 48000),
    }
    full = encode(root / "tmp_full.mp3", chord(4, 44100), 44100)
    (root / "truncated.mp3").write_bytes(full.read_bytes()[:12000])
    full.unlink()
    (root / "zero.mp3").write_bytes(b"")
    (root / "random.mp3").write_bytes(np.random.default_rng(0).bytes(8000))
    (root / "readme.txt").write_text("not audio")
    unsupported_codec_wav(root / "weird codec.wav")
    write_wav(root / "silence.wav", np.zeros(32000, np.float32), 16000)
    write_wav(root / "short.wav", chord(0.3, 16000), 16000)
    return good


def test_convert_survives_every_kind_of_bad_input(tmp_path):
    good = make_messy_folder(tmp_path / "in")
    proc = run_cli("convert", tmp_path / "in", tmp_path / "out", "--rate", "16000", "--jobs", "2",
                   "--test-fraction", "0.3")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    manifest = read_jsonl(tmp_path / "out" / "manifest.jsonl")
    failures = {Path(f["source"]).name: f["reason"] for f in read_jsonl(tmp_path / "out" / "failures.jsonl")}
    sources = {Path(e["source"]).name for e in manifest}
    assert {Path(k).name for k in good} <= sources
    assert set(failures) == {"zero.mp3", "random.mp3", "readme.txt", "weird codec.wav",
                             "silence.wav", "short.wav"}
    assert "empty" in failures["zero.mp3"]
    assert "silent" in failures["silence.wav"]
    assert "too short" in failures["short.wav"]
    assert "not an audio file" in failures["readme.txt"]
    # a truncated mp3 keeps the part that decodes, or is recorded; never stops the run
    assert "truncated.mp3" in sources or "truncated.mp3" in failures
    assert "failed 6" in proc.stdout and "converted" in proc.stdout
    for entry in manifest:
        info = sf.info(str(tmp_path / "out" / entry["path"]))
        assert info.samplerate == 16000 and info.channels == 1
        assert abs(info.frames / 16000 - entry["seconds"]) < 1e-3
        assert entry["path"].startswith(entry["split"] + "/")
    assert {e["split"] for e in manifest} == {"train", "test"}
    # non-ASCII and spaces survive into output names
    assert any("mp3 é ü" in e["path"] for e in manifest)

    again = run_cli("convert", tmp_path / "in", tmp_path / "out", "--rate", "16000",
                    "--test-fraction", "0.3")
    assert again.returncode == 0
    assert "converted 0" in again.stdout and f"unchanged {len(manifest)}" in again.stdout
    assert read_jsonl(tmp_path / "out" / "manifest.jsonl") == manifest


def test_split_is_deterministic_and_changed_sources_are_reconverted(tmp_path):
    for i in range(20):
        write_wav(tmp_path / "in" / f"take{i}.wav", chord(1.2, 8000, freqs=(100 + 10 * i,)), 8000)
    first = convert([tmp_path / "in"], tmp_path / "a", rate=8000, test_fraction=0.3, progress=False)
    convert([tmp_path / "in"], tmp_path / "b", rate=8000, test_fraction=0.3, progress=False)
    split = lambda d: {e["path"] for e in read_jsonl(d / "manifest.jsonl")}  # noqa: E731
    assert split(tmp_path / "a") == split(tmp_path / "b")
    assert first.converted == 20 and 1 <= sum(p.startswith("test/") for p in split(tmp_path / "a")) <= 12

    changed = tmp_path / "in" / "take3.wav"
    write_wav(changed, chord(2.5, 8000), 8000)
    os.utime(changed, (time.time() + 5, time.time() + 5))
    second = convert([tmp_path / "in"], tmp_path / "a", rate=8000, test_fraction=0.3, progress=False)
    assert (second.converted, second.unchanged) == (1, 19)
    entry = [e for e in read_jsonl(tmp_path / "a" / "manifest.jsonl") if e["source"].endswith("take3.wav")]
    assert len(entry) == 1 and entry[0]["seconds"] == 2.5


def test_explicit_test_inputs_and_exit_status_when_nothing_converts(tmp_path):
    write_wav(tmp_path / "tr" / "a.wav", chord(1.5, 8000), 8000)
    write_wav(tmp_path / "te" / "b.wav", chord(1.5, 8000), 8000)
    proc = run_cli("convert", tmp_path / "tr", tmp_path / "out", "--test", tmp_path / "te",
                   "--rate", "8000")
    assert proc.returncode == 0
    assert (tmp_path / "out" / "train" / "a.wav").is_file()
    assert (tmp_path / "out" / "test" / "b.wav").is_file()

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mp3").write_bytes(b"garbage" * 100)
    proc = run_cli("convert", tmp_path / "bad", tmp_path / "out2")
    assert proc.returncode == 1
    assert "converted 0" in proc.stdout and "failed 1" in proc.stdout


def test_usage_errors_are_one_line_with_status_2(tmp_path, capsys):
    assert_one_line_error(run_cli("convert", tmp_path / "missing", tmp_path / "out"), "not found")
    assert_refused(cli(capsys, "convert", tmp_path), "required")
    assert_refused(cli(capsys, "convert", tmp_path, tmp_path / "o", "--rate", "0"), "rate")
    assert_refused(cli(capsys, "convert", tmp_path, tmp_path / "o", "--test-fraction", "2"),
                   "fraction")
    assert_one_line_error(run_cli("nonsense"), "invalid choice")


def test_kill_minus_nine_then_rerun_finishes_the_job(tmp_path):
    for i in range(60):
        encode(tmp_path / "in" / f"t{i:02d}.flac", chord(3, 44100, freqs=(200 + i,)), 44100)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "musicrgan", "convert", str(tmp_path / "in"), str(out),
           "--rate", "16000", "--jobs", "2", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        if len(read_jsonl(out / "manifest.jsonl")) >= 5:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = read_jsonl(out / "manifest.jsonl")
    assert 5 <= len(done) < 60, "the kill should land mid-run"
    # every manifest line has its whole file; every visible wav is whole
    for entry in done:
        assert sf.info(str(out / entry["path"])).frames == 48000
    for wav in out.rglob("*.wav"):
        if not wav.name.startswith("."):
            assert sf.info(str(wav)).frames == 48000

    rerun = run_cli("convert", tmp_path / "in", out, "--rate", "16000", "--quiet")
    assert rerun.returncode == 0
    final = read_jsonl(out / "manifest.jsonl")
    assert len(final) == 60 and len({e["path"] for e in final}) == 60
    assert not list(out.rglob("*.tmp"))
    assert f"unchanged {len(done)}" in rerun.stdout or "unchanged" in rerun.stdout


def test_original_convert_audio_script_keeps_its_argument_order(tmp_path):
    write_wav(tmp_path / "train_in" / "a.wav", chord(1.5, 22050), 22050)
    write_wav(tmp_path / "test_in" / "b.wav", chord(1.5, 22050), 22050)
    proc = subprocess.run([sys.executable, str(ROOT / "convert_audio.py"), tmp_path / "train_in",
                           tmp_path / "test_in", tmp_path / "train_out", tmp_path / "test_out",
                           "11025"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sf.info(str(tmp_path / "train_out" / "a.wav")).samplerate == 11025
    assert (tmp_path / "test_out" / "b.wav").is_file()
    assert not (tmp_path / "train_out" / "b.wav").exists()
    bad = subprocess.run([sys.executable, str(ROOT / "convert_audio.py"), "only", "two"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr and "Traceback" not in bad.stderr


def test_two_shards_merged_equal_one_convert(tmp_path, capsys):
    from musicrgan.corpus.manifest import shard_for
    make_messy_folder(tmp_path / "in")
    # two sources one name apart by extension, in different shards: each shard must name
    # its twin as a whole convert does (twin.wav.wav, twin.flac.wav), not twin.wav
    write_wav(tmp_path / "in" / "twin.wav", chord(2, 16000, (300.0,)), 16000)
    encode(tmp_path / "in" / "twin.flac", chord(2, 16000, (500.0,)), 16000)
    common = ["--rate", "8000", "--test-fraction", "0.3", "--jobs", "2", "--quiet"]
    assert cli(capsys, "convert", tmp_path / "in", tmp_path / "whole", *common)[0] == 0
    for i in (1, 2):
        assert cli(capsys, "convert", tmp_path / "in", tmp_path / f"part{i}", *common,
                   "--shard", f"{i}/2")[0] == 0
    parts = [read_jsonl(tmp_path / f"part{i}" / "manifest.jsonl") for i in (1, 2)]
    assert parts[0] and parts[1] and not {e["path"] for e in parts[0]} & {e["path"] for e in parts[1]}
    assert all(shard_for(Path(e["source"]).relative_to(tmp_path / "in").as_posix(), 2) == 1
               for e in parts[0])

    status, out, _ = cli(capsys, "corpus", "merge", tmp_path / "merged", tmp_path / "part1",
                         tmp_path / "part2")
    assert status == 0 and "added" in out
    whole, merged = tmp_path / "whole", tmp_path / "merged"
    for name in ("manifest.jsonl", "failures.jsonl"):
        assert read_jsonl(merged / name) == read_jsonl(whole / name), name
    wavs = sorted(p.relative_to(whole) for p in whole.rglob("*.wav"))
    assert wavs == sorted(p.relative_to(merged) for p in merged.rglob("*.wav"))
    assert shard_for("twin.wav", 2) != shard_for("twin.flac", 2)
    assert {w.name for w in wavs} >= {"twin.wav.wav", "twin.flac.wav"}
    assert all((merged / w).read_bytes() == (whole / w).read_bytes() for w in wavs)

    # again: nothing to add; a part at another rate is refused in one line
    status, out, _ = cli(capsys, "corpus", "merge", merged, tmp_path / "part1", tmp_path / "part2")
    assert status == 0 and "0 files added" in out
    assert cli(capsys, "convert", tmp_path / "in", tmp_path / "other", "--rate", "16000",
               "--quiet", "--shard", "1/2")[0] == 0
    assert_refused(cli(capsys, "corpus", "merge", merged, tmp_path / "other"), "rate")
    assert_refused(cli(capsys, "convert", tmp_path / "in", tmp_path / "x", "--shard", "3/2"),
                   "shard")
