"""evaluate, compare and the results pages, through the command line."""

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import assert_one_line_error, assert_refused, cli, run_cli, tiny_config as tiny
from musicrgan.audio import load
from musicrgan.metrics import DESCRIPTORS, grid_alignment
from musicrgan.runs import Run


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        if tag in ("audio", "img", "a", "source"):
            self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def page_references(page: Path) -> list[str]:
    parser = _Refs()
    parser.feed(page.read_text())
    return parser.refs


def assert_page_files_exist(page: Path, at_least: int):
    refs = page_references(page)
    assert len(refs) >= at_least, refs
    for ref in refs:
        assert not re.match(r"^[a-z]+:", ref), f"{ref} is not relative to the page"
        assert (page.parent / ref).is_file(), f"{page} references {ref}, which does not exist"


@pytest.fixture(scope="module")
def trained_run(techno, tmp_path_factory):
    run = tmp_path_factory.mktemp("eval") / "run"
    proc = run_cli("train", "new", run, "--model", "lstm-gan", "--data", techno, "--config",
                   tiny("lstm-gan"), "--epochs", "2")
    assert proc.returncode == 0, proc.stderr
    return run


def test_evaluate_writes_eval_json_and_clips(trained_run, techno):
    proc = run_cli("evaluate", trained_run, "--n", "3", "--seconds", "1.5", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "Fréchet distance" in proc.stdout and "tempo_strength" in proc.stdout
    result = json.loads((trained_run / "eval.json").read_text())
    assert result["family"] == "lstm-gan" and result["epochs"] == 2 and result["n"] == 3
    assert result["parameters"] > 1000
    assert set(result["descriptors"]) == set(DESCRIPTORS)
    assert len(result["generated_descriptors"]) == 3
    f = result["frechet"]
    # the scale: the corpus's own train split is much closer to its test split than noise
    assert f["train_vs_test"] < f["noise_vs_test"]
    # and for each descriptor, the share of the train split's own clips inside the test
    # split's range: what reproducing the training audio would score
    from musicrgan.data import corpus_clips
    from musicrgan.metrics import descriptors
    train = [descriptors(c) for c in corpus_clips(techno, "train", 1.5, 64)]
    test = [descriptors(c) for c in corpus_clips(techno, "test", 1.5, 64)]
    for name in DESCRIPTORS:
        low, high = np.percentile([d[name] for d in test], [5, 95])
        assert result["descriptors"][name]["train_in_range"] == pytest.approx(
            np.mean([low <= d[name] <= high for d in train]))
    assert "train split in range" in proc.stdout
    # and its Fréchet distance with as many of its clips as were generated, over random sets
    from musicrgan.metrics import log_mel, subsets_frechet_distance
    train_frames = [log_mel(c) for c in corpus_clips(techno, "train", 1.5, 64)]
    test_frames = np.concatenate([log_mel(c) for c in corpus_clips(techno, "test", 1.5, 64)])
    of_n = f["train_vs_test_of_n"]
    expected = subsets_frechet_distance(train_frames, test_frames, 3, seed=result["seed"])
    assert of_n["clips"] == 3 and of_n["draws"] == len(expected) == 16
    assert of_n["mean"] == pytest.approx(np.mean(expected))
    assert of_n["min"] < of_n["max"]  # sets of 3 differ
    assert "3 of its clips" in proc.stdout
    # a set of every clip is the whole split's distance, however drawn
    assert subsets_frechet_distance(train_frames, test_frames, len(train_frames), draws=2) == \
        pytest.approx([f["train_vs_test"]] * 2)
    assert result["speed"]["realtime_factor_batch"] == pytest.approx(
        3 * result["speed"]["realtime_factor_per_stream"], rel=0.01)
    assert result["reconstruction"] is None  # lstm-gan does not encode audio
    # lstm-gan keeps a beat clock: each clip's tempo, asked and found (a tiny run keeps none)
    t = result["tempo_asked"]
    assert len(t["asked"]) == len(t["found"]) == 3
    # tempos are drawn from those the model trained on (the fixture's 120-150 BPM, one of
    # them found at 2/3), and the numbers reported are those of the clips written
    assert all(95 < bpm < 152 for bpm in t["asked"]) and len(set(t["asked"])) == 3
    assert [d["tempo"] for d in result["generated_descriptors"]] == t["found"]
    assert t["within_3_percent"] == pytest.approx(
        np.mean([abs(f / a - 1) < 0.03 for f, a in zip(t["found"], t["asked"])]))
    assert "of the tempo they were generated at" in proc.stdout and "16th-note grid" in proc.stdout
    assert len(result["clips"]) == 3
    clips = [load(str(trained_run / clip), 16000) for clip in result["clips"]]
    assert [c.size for c in clips] == [24000] * 3  # 1.5 s at the metrics' 16 kHz
    for offset, key in ((1.0, "grid_alignment"), (1.07, "grid_alignment_7_percent_off")):
        assert t[key] == pytest.approx(np.mean(
            [grid_alignment(c, offset * a) for c, a in zip(clips, t["asked"])]), abs=0.02)


def test_evaluate_bad_arguments(trained_run, techno, tmp_path, capsys):
    assert_one_line_error(run_cli("evaluate", tmp_path / "missing"), "not found")  # a process
    assert_refused(cli(capsys, "evaluate", trained_run, "--n", "1"), "--n")
    assert_refused(cli(capsys, "evaluate", trained_run, "--seconds", "60"), "--seconds")
    assert_refused(cli(capsys, "evaluate", trained_run, "--data", tmp_path / "nope"),
                   "corpus not found")


def test_generate_writes_and_updates_the_folder_page(trained_run, tmp_path):
    out = tmp_path / "results"
    for seed in ("1", "2"):
        proc = run_cli("generate", trained_run, "--n", "2", "--seconds", "1", "--seed", seed,
                       "--out", out, "--quiet")
        assert proc.returncode == 0, proc.stderr
    listing = json.loads((out / "index.json").read_text())["clips"]
    assert sorted(c["file"] for c in listing) == sorted(p.name for p in out.glob("*.wav"))
    assert len(listing) == 4
    assert {c["seed"] for c in listing} == {1, 2} and all(c["family"] == "lstm-gan" for c in listing)
    page = out / "index.html"
    assert_page_files_exist(page, at_least=8)  # 4 players + 4 spectrograms
    assert "seed: 2" in page.read_text() and str(trained_run) in page.read_text()

    # a deleted clip leaves the page at the next generate
    gone = sorted(out.glob("*seed1_1.wav"))[0]
    gone.unlink()
    assert run_cli("generate", trained_run, "--n", "1", "--seconds", "1", "--seed", "3",
                   "--out", out, "--quiet").returncode == 0
    assert gone.name not in page.read_text()
    assert_page_files_exist(page, at_least=8)


COMPARED = ["fft-lstm", "vqvae+code-prior"]  # a family and a chain


def compare_cli(techno, out, budget="0.01"):
    return run_cli("compare", "--data", techno, "--models", ",".join(COMPARED),
                   "--budget-minutes", budget, "--out", out, "--n", "2", "--seconds", "60",
                   # a config for a family wherever it trains, or for one stage of a chain
                   "--config", f"fft-lstm={tiny('fft-lstm')}", "--config", f"vqvae={tiny('vqvae')}",
                   "--config", f"vqvae+code-prior:code-prior={tiny('code-prior')}", "--quiet")


@pytest.fixture(scope="module")
def compared(techno, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "report"
    proc = compare_cli(techno, out)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_compare_trains_evaluates_and_reports_every_family(compared):
    out, proc = compared
    summary = json.loads((out / "compare.json").read_text())
    # clips of 60 s asked, from a corpus of loops under 4 s: the longest clip it allows
    assert "comparing clips of" in proc.stderr and 3 < summary["seconds"] <= 4
    families = COMPARED
    assert list(summary["results"]) == families
    assert summary["best"] == min(families, key=lambda k: summary["results"][k]["frechet"]
                                  ["generated_vs_test"])
    assert f"best: {summary['best']}" in proc.stdout
    r = summary["results"]["fft-lstm"]
    assert r["epochs"] >= 1 and r["training_seconds"] > 0
    # the budget, not early stopping, ends every run a compare trains
    for name in ("fft-lstm", "vqvae+code-prior/vqvae", "vqvae+code-prior/code-prior"):
        assert yaml.safe_load((out / "runs" / name / "config.yaml").read_text())[
            "config"]["patience"] == 0
    assert (out / "runs" / "fft-lstm" / "history.csv").is_file()
    # the chain: a code-prior trained on the latents of the vqvae beside it, both stages and
    # the encoding between them counted in its training time and parameters
    chain = summary["results"]["vqvae+code-prior"]
    first, second = out / "runs" / "vqvae+code-prior" / "vqvae", Path(chain["run"])
    assert second == out / "runs" / "vqvae+code-prior" / "code-prior"
    upstream = yaml.safe_load((second / "config.yaml").read_text())["upstream"]
    assert Path(upstream["run"]) == first.resolve()
    first_state, second_state = (json.loads((r / "state.json").read_text()) for r in (first, second))
    assert chain["epochs"] == f"{first_state['epochs_done']}+{second_state['epochs_done']}"
    stages = chain["stages"]
    assert stages["encoding_seconds"] > 0 and chain["training_seconds"] == pytest.approx(
        stages["upstream_training_seconds"] + stages["encoding_seconds"]
        + sum(row["seconds"] for row in second_state["history"]), abs=0.2)
    assert chain["parameters"] == sum(Run(r).model().count_params() for r in (first, second))
    report = (out / "report.md").read_text()
    for name in families:
        assert re.search(rf"^\| {re.escape(name)} \| \d+\.\d \|", report, re.M), report
    assert "white noise" in report and "corpus train split" in report
    page = out / "index.html"
    # per family 2 players + 2 spectrograms, a player and a spectrogram for the one corpus
    # test loop as long as the clips, and the loss curves
    assert_page_files_exist(page, at_least=2 * 4 + 2 + 1)
    text = page.read_text()
    assert text.count("<audio") == 5 and 'class="best"' in text


@pytest.mark.slow  # 20 s: a second compare over the first's folder
def test_compare_resumes_without_training_again(compared, techno):
    out, _ = compared
    before = {n: json.loads((out / "runs" / n / "state.json").read_text())["epochs_done"]
              for n in ("fft-lstm", "vqvae+code-prior/vqvae",
                        "vqvae+code-prior/code-prior")}
    proc = compare_cli(techno, out)
    assert proc.returncode == 0, proc.stderr
    assert "== fft-lstm: evaluating" in proc.stderr  # (the notes go to stderr)
    assert "training for" not in proc.stderr  # every run has used its budget
    assert "encoding the corpus" not in proc.stderr
    after = {n: json.loads((out / "runs" / n / "state.json").read_text())["epochs_done"]
             for n in before}
    assert after == before


def test_compare_keeps_early_stopping_a_config_asks_for(techno, tmp_path):
    from musicrgan.compare import _open
    config = yaml.safe_load(Path(tiny("fft-lstm")).read_text())
    asked = _open(tmp_path / "asked", "fft-lstm", Path(techno),
                  {"fft-lstm": config | {"patience": 3}})
    plain = _open(tmp_path / "plain", "fft-lstm", Path(techno), {"fft-lstm": config})
    assert (asked.family.config.patience, plain.family.config.patience) == (3, 0)


def test_compare_bad_arguments(techno, tmp_path, capsys):
    base = ["compare", "--data", techno, "--budget-minutes", "1", "--out", tmp_path / "o"]
    assert_one_line_error(run_cli(*base, "--models", "fft-lstm,wavenet"), "unknown model family")
    assert_refused(cli(capsys, *base, "--models", ","), "--models")
    assert_refused(cli(capsys, *base, "--models", "code-prior"), "name the chain")
    assert_refused(cli(capsys, *base, "--models", "lstm-gan+code-prior"),
                   "first stage must encode")
    assert_refused(cli(capsys, *base, "--models", "vqvae+code-prior", "--upstream-share", "1"),
                   "--upstream-share")
    assert_refused(cli(capsys, "compare", "--data", tmp_path / "none", "--models", "fft-lstm",
                       "--budget-minutes", "1", "--out", tmp_path / "o"), "corpus not found")
    assert_refused(cli(capsys, *base, "--models", "fft-lstm", "--config", "lstm-gan=x.yaml"),
                   "not in --models")
    assert_refused(cli(capsys, *base[:-4], "--budget-minutes", "0", "--models", "fft-lstm",
                       "--out", tmp_path / "o"), "budget")
    # refused before any training, not after the budget is spent
    assert_refused(cli(capsys, *base, "--models", "fft-lstm", "--n", "1"), "--n must be at least 2")
    assert not (tmp_path / "o" / "runs").exists()


@pytest.mark.slow
def test_pages_load_in_a_real_browser(compared, trained_run, tmp_path):
    """Chromium opens the pages from disk; every player and image loads (the page's own
    check marks each data-state="ok" or "missing")."""
    import subprocess
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or \
        shutil.which("google-chrome")
    if browser is None:
        pytest.fail("no chromium: install it (apt-get install chromium) to run this check")
    out, _ = compared
    assert run_cli("generate", trained_run, "--n", "2", "--seconds", "1",
                   "--out", tmp_path / "gen", "--quiet").returncode == 0
    for page, media in ((out / "index.html", 11), (tmp_path / "gen" / "index.html", 4)):
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                              "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        states = re.findall(r'data-state="(\w+)"', dom)
        assert states.count("ok") == media and "missing" not in states, (page, states)
    # and a missing file is shown as missing
    (out / "img" / "loss.png").unlink()
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=10000", "--dump-dom",
                          (out / "index.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert re.findall(r'data-state="(\w+)"', dom).count("missing") == 1


def _tiny_autoencoder_family():
    """A family with `reconstruct`, as the autoencoders to come will have: two convolutions."""
    import keras
    import numpy as np
    from musicrgan.models.base import Encodes, Generates, TrainConfig

    class TinyAutoencoder(Encodes, Generates):
        name = "test-autoencoder"
        Config = TrainConfig

        def window(self):
            return 1024

        def examples(self, windows):
            return windows[..., None], windows[..., None]

        def build(self):
            x = keras.Input((None, 1))
            z = keras.layers.Conv1D(8, 16, strides=4, padding="same", activation="tanh")(x)
            y = keras.layers.Conv1DTranspose(1, 16, strides=4, padding="same")(z)
            model = keras.Model(x, y)
            self.compile(model)
            return model

        def compile(self, model):
            model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")

        def encode(self, model, batch):
            return np.asarray(model.layers[1](batch[..., None].astype("float32")))

        def decode(self, model, latents):
            return np.asarray(model.layers[2](latents))[..., 0]

        def generate(self, model, request, progress=None):
            noise = np.random.default_rng(request.seed).standard_normal(
                (request.n, request.samples(self.rate))) * 0.1
            return self.reconstruct(model, noise)

    return TinyAutoencoder


def test_evaluate_measures_reconstruction_for_families_that_encode_audio(techno, tmp_path):
    import numpy as np
    from musicrgan.evaluate import evaluate
    from musicrgan.models import FAMILIES, register
    from musicrgan.runs import Run

    register(_tiny_autoencoder_family())
    try:
        run = tmp_path / "ae"
        Run.create(run, "test-autoencoder", techno, {
            "batch_size": 4, "steps_per_epoch": 20, "validation_steps": 2}).train(2, verbose=0)
        result = evaluate(run, n=2, seconds=1.0, progress=False)
    finally:
        FAMILIES.pop("test-autoencoder")
    r = result["reconstruction"]
    assert set(r) == {"mr_stft", "mel_distance", "si_sdr", "visqol", "frechet", "tempo_strength",
                      "tempo_strength_of_clips", "onset_rate", "onset_rate_of_clips"}
    assert all(np.isfinite(v) for v in r.values())
    assert r["mr_stft"] > 0 and 1.0 <= r["visqol"] <= 5.0
    assert r["si_sdr"] > 0  # 40 steps already reproduce more signal than they distort
    saved = json.loads((run / "eval.json").read_text())["reconstruction"]
    assert saved == pytest.approx(r)


def test_corpus_clips_spread_over_files_and_round_robin(techno):
    """Clips come from files spread over the split, round-robin, and from the middle of
    each file's stretches, not its start (a song's intro)."""
    import numpy as np
    from musicrgan.audio import load
    from musicrgan.data import corpus_files
    from musicrgan.data import corpus_clips
    files = corpus_files(techno, "train")
    assert len(files) >= 3
    second = 8000
    # every file holds three whole 1 s clips (the loops are whole bars: 3.2-3.3 s)
    assert all(3 * second <= load(f.path, 8000).size < 4 * second for f in files)
    # fewer clips than files: one clip of files spread over the split, the middle one
    two = corpus_clips(techno, "train", 1.0, 2, rate=8000)
    assert len(two) == 2
    for clip, info in zip(two, (files[0], files[-1])):
        np.testing.assert_allclose(clip, load(info.path, 8000)[second:2 * second], atol=1e-6)
    # more clips than files: every file's first pick before any file's second; two picks
    # of three clips: the first and the last (the middles of the file's two halves)
    many = corpus_clips(techno, "train", 1.0, len(files) + 1, rate=8000)
    first = load(files[0].path, 8000)
    np.testing.assert_allclose(many[0], first[:second], atol=1e-6)
    np.testing.assert_allclose(many[len(files)], first[2 * second:3 * second], atol=1e-6)
    # a file that is not at the asked rate is resampled whole and cut the same way
    resampled = corpus_clips(techno, "train", 1.0, 1, rate=16000)[0]
    np.testing.assert_allclose(resampled, load(files[0].path, 16000)[16000:32000], atol=1e-6)
