"""Slow end-to-end checks on real recordings (fetched from Debian packages, not committed)."""

import subprocess

import pytest
import soundfile as sf

from conftest import ROOT, run_cli
from musicrgan.corpus.manifest import read_jsonl
from musicrgan.data import window_dataset

FETCH = ROOT.parent / "shared" / "corpora" / "fetch-real-audio"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def drums(tmp_path_factory):
    if not FETCH.exists():
        pytest.skip("shared/corpora/fetch-real-audio is not beside this checkout")
    dest = ROOT / "data" / "real"
    subprocess.run([str(FETCH), str(dest), "drums"], check=True, capture_output=True)
    return dest / "drums"


def test_convert_real_drum_samples_then_stream_them(drums, tmp_path):
    proc = run_cli("convert", drums, tmp_path / "c", "--rate", "16000", "--min-seconds", "0.5",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    manifest = read_jsonl(tmp_path / "c" / "manifest.jsonl")
    failures = read_jsonl(tmp_path / "c" / "failures.jsonl")
    assert len(manifest) + len(failures) == len(list(drums.iterdir()))
    assert len(manifest) > 30
    assert all("too short" in f["reason"] for f in failures), failures[:3]
    for entry in manifest[:20]:
        assert sf.info(str(tmp_path / "c" / entry["path"])).samplerate == 16000
    batch = next(iter(window_dataset(tmp_path / "c", "train", 8000, 8, seed=0)))
    assert batch.shape == (8, 8000) and float(abs(batch.numpy()).max()) > 0.01
