"""The studio's HTTP API and page (FastAPI): corpora, runs, jobs and results of one home
folder. Long actions are jobs (jobs.py); everything a request names goes through Home."""

from __future__ import annotations

import hmac
import json
import logging
import re
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, File, Form, Path as PathParam, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .home import AUDIO_SUFFIXES, UPLOAD_DAYS, Home, NotFound, Refused, safe_filename
from .jobs import Busy, Jobs, Lane, new_job_id

log = logging.getLogger("musicrgan")
STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "musicrgan_token"
JOB_ID = r"^[0-9a-f]{12}$"
MB = 1 << 20
UPLOAD_FILES_AT_ONCE = 20  # a request's size limit, in largest uploads (2 GB by default)
TRAIN_KINDS = ("train-new", "train-continue")


class Conflict(ValueError):
    """The request clashes with what is there (409): a name taken, a run being trained."""


# request bodies (their fields and limits are the OpenAPI schema's) ----------------------
class SynthBody(BaseModel):
    name: str = Field(description="corpus name (letters, digits, . - _)")
    loops: int = Field(16, ge=2, le=512)
    seconds: float = Field(8.0, gt=0, le=60)
    rate: int = Field(16000, ge=4000, le=48000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    test_fraction: float = Field(0.125, gt=0, lt=1)


class NewRunBody(BaseModel):
    name: str = Field(description="run name (letters, digits, . - _)")
    model: str = Field(description="model family (GET /api/families)")
    corpus: str | None = Field(None, description="corpus name; a second stage defaults to "
                                                 "its upstream's")
    upstream: str | None = Field(None, description="for a second stage: the run whose "
                                                   "latents it trains on")
    config: dict[str, Any] = Field(default_factory=dict, description="config keys to set")
    epochs: int | None = Field(None, ge=1, le=10000)
    minutes: float | None = Field(None, gt=0, le=7 * 24 * 60)


class TrainBody(BaseModel):
    epochs: int | None = Field(None, ge=1, le=10000)
    minutes: float | None = Field(None, gt=0, le=7 * 24 * 60)
    phase: str | None = Field(None, description="move on to this phase (wave-vae: adversarial)")


class AboutBody(BaseModel):
    display_name: str | None = Field(None, max_length=80)
    description: str | None = Field(None, max_length=4000)


class GenerateBody(BaseModel):
    n: int = Field(3, ge=1, le=16)
    seconds: float = Field(8.0, gt=0, le=120)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    temperature: float | None = Field(None, ge=0, le=10)
    controls: dict[str, float] = Field(default_factory=dict,
                                       description="the family's own controls by name")
    prime: str | None = Field(None, description="upload id of audio to continue")
    match_loudness: bool = Field(False, description="master each clip to the corpus's level")
    checkpoint: str = Field("best", pattern=r"^(best|last|best-[a-z]+)$")


class InterpolateBody(BaseModel):
    a: str = Field(description="upload id of the first end")
    b: str = Field(description="upload id of the other end")
    steps: int = Field(5, ge=2, le=16)
    checkpoint: str = Field("best", pattern=r"^(best|last|best-[a-z]+)$")


class ReconstructBody(BaseModel):
    uploads: list[str] = Field(min_length=1, max_length=8)
    checkpoint: str = Field("best", pattern=r"^(best|last|best-[a-z]+)$")


class EvaluateBody(BaseModel):
    n: int = Field(8, ge=2, le=32)
    seconds: float = Field(4.0, gt=0, le=30)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    checkpoint: str = Field("best", pattern=r"^(best|last|best-[a-z]+)$")


class CompareBody(BaseModel):
    corpus: str
    models: list[str] = Field(min_length=1, max_length=6,
                              description="families, or FIRST+SECOND for a chain")
    budget_minutes: float = Field(gt=0, le=24 * 60)
    n: int = Field(4, ge=2, le=16)
    seconds: float = Field(4.0, gt=0, le=30)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    configs: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="config keys for one family wherever it trains "
                                          "(key: the family), or for one stage of a chain "
                                          "(key: A+B:B)")


def create_app(home: str | Path, *, token: str | None = None, max_upload_mb: float = 100,
               lanes: dict[str, Lane] | None = None) -> FastAPI:
    home = Home(home)
    max_upload = int(max_upload_mb * MB)
    runner = Jobs(home, lanes=lanes, collect=lambda job: collect(home, job),
                  on_start=lambda job: training_base(home, job),
                  progress=lambda job: training_progress(home, job))
    if runner.interrupted_at_start:
        log.warning(f"{runner.interrupted_at_start} jobs were cut short when the server last "
                    "stopped: marked interrupted")
    forgotten = home.forget_old_uploads()
    if forgotten:
        log.info(f"removed {forgotten} uploads older than {UPLOAD_DAYS} days")

    def jobs() -> Jobs:
        return runner

    @asynccontextmanager
    async def lifespan(app):
        yield
        runner.shutdown()

    app = FastAPI(title="musicrgan studio", version=_version(), lifespan=lifespan,
                  description="Train, generate, reconstruct, compare and listen. Long "
                              "actions return a job: poll GET /api/jobs/{id}.")
    app.state.home, app.state.jobs = home, runner

    # errors: one line saying what is wrong ----------------------------------------------
    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)

    from ..data import CorpusError
    from ..runs import RunError
    for exc_type, status in ((Refused, 400), (RunError, 400), (CorpusError, 400),
                             (NotFound, 404), (Conflict, 409), (TooLarge, 413),
                             (NotAudio, 415), (Busy, 429)):
        app.add_exception_handler(exc_type, lambda r, e, s=status: error(s, str(e)))

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if token:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip() \
                or request.cookies.get(TOKEN_COOKIE, "") \
                or (request.query_params.get("token", "") if request.url.path == "/" else "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return error(401, "a token is needed: open the address `musicrgan serve` "
                                  "printed, or send 'Authorization: Bearer TOKEN'")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_upload * UPLOAD_FILES_AT_ONCE:
            return error(413, f"request too large: up to {max_upload_mb:g} MB a file, "
                              f"{UPLOAD_FILES_AT_ONCE} such files a request")
        response = await call_next(request)
        if token and request.url.path == "/" and request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    # the page -------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return HTMLResponse((STATIC / "index.html").read_text())

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # families -------------------------------------------------------------------------
    @app.get("/api/families", summary="Model families and what each can do")
    def families():
        from ..models import FAMILIES, family_names
        return [family_info(FAMILIES[name](FAMILIES[name].Config(), 16000))
                for name in family_names()]

    # corpora --------------------------------------------------------------------------
    @app.get("/api/corpora", summary="Corpora: files, minutes, rate, failures")
    def corpora():
        return home.corpora()

    @app.get("/api/corpora/{name}", summary="One corpus")
    def corpus(name: str):
        return home.describe_corpus(name)

    @app.get("/api/corpora/{name}/clips", summary="A corpus's files of one split")
    def corpus_clips(name: str, split: str = "test"):
        return [{**c, "url": f"/api/corpora/{name}/audio/{c['file']}",
                 "image_url": f"/api/corpora/{name}/spectrogram/{c['file']}"}
                for c in home.corpus_clips(name, split)]

    @app.get("/api/corpora/{name}/audio/{path:path}", summary="A corpus file's audio")
    def corpus_audio(name: str, path: str):
        return FileResponse(home.file_under(home.corpus(name), path), media_type="audio/wav")

    @app.get("/api/corpora/{name}/spectrogram/{path:path}", summary="A corpus file's "
                                                                     "spectrogram (PNG)")
    def corpus_spectrogram(name: str, path: str):
        source = home.file_under(home.corpus(name), path)
        image = home.studio / "spectrograms" / name / f"{path}.png"
        if not image.is_file() or image.stat().st_mtime < source.stat().st_mtime:
            from .. import audio
            from ..report import spectrogram_png
            rate = audio.sf.info(str(source)).samplerate
            spectrogram_png(audio.load(source, rate), rate, image)
        return FileResponse(image, media_type="image/png")

    @app.post("/api/corpora/synth", status_code=202, summary="Synthesize the built-in corpus")
    def synth(body: SynthBody):
        out = home.corpus(body.name, exists=False)
        if out.exists():
            raise Conflict(f"corpus {body.name} exists: choose another name")
        argv = ["synth", out, "--loops", body.loops, "--seconds", body.seconds, "--rate",
                body.rate, "--seed", body.seed, "--test-fraction", body.test_fraction]
        return job_view(jobs().submit("synth", "work", argv, target=f"corpus:{body.name}",
                                      params={"corpus": body.name}))

    @app.post("/api/corpora", status_code=202, summary="Make a corpus from uploaded files "
                                                       "(converted as `musicrgan convert`)")
    def upload_corpus(name: str = Form(), files: list[UploadFile] = File(),
                      rate: int = Form(16000, ge=4000, le=48000),
                      test_fraction: float = Form(0.1, gt=0, lt=1)):
        out = home.corpus(name, exists=False)
        if out.exists():
            raise Conflict(f"corpus {name} exists: choose another name")
        if not 1 <= len(files) <= 1000:
            raise Refused("send between 1 and 1000 files")
        upload, folder = home.new_upload_folder()
        try:
            from ..reconstruct import unique_name
            taken = []
            for f in files:
                taken.append(unique_name(Path(safe_filename(f.filename)), taken))
                target = folder / taken[-1].name
                save_upload(f, target, max_upload)
                check_audio(target)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        argv = ["convert", folder, out, "--rate", rate, "--test-fraction", test_fraction]
        return job_view(jobs().submit("convert", "work", argv, target=f"corpus:{name}",
                                      params={"corpus": name, "files": len(files)}))

    # uploads --------------------------------------------------------------------------
    @app.post("/api/uploads", status_code=201, summary="Upload one audio file (a prime, an "
                                                       "end of an interpolation, a file to "
                                                       "reconstruct)")
    def upload_file(file: UploadFile = File()):
        upload, folder = home.new_upload_folder()
        target = folder / safe_filename(file.filename)
        try:
            save_upload(file, target, max_upload)
            seconds = check_audio(target)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return {"id": upload, "file": target.name, "seconds": round(seconds, 3)}

    # runs -----------------------------------------------------------------------------
    @app.get("/api/runs", summary="Runs: family, corpus, upstream, epochs, phase, best")
    def runs():
        return [run_summary(home, name) for name in home.run_names()]

    @app.get("/api/runs/{run}", summary="One run: its summary, history, what it can do")
    def run_detail(run: str):
        from ..runs import Run
        detail = run_summary(home, run)
        opened = Run(home.run_path(run))
        detail["history"] = opened.history
        detail["abilities"] = family_info(opened.family)
        eval_json = home.run_path(run) / "eval.json"
        detail["evaluation"] = evaluation_summary(eval_json)
        detail["jobs"] = [job_view(j) for j in jobs().store.recent(10, target=f"run:{run}")]
        return detail

    @app.patch("/api/runs/{run}", summary="Give a run a display name and description")
    def set_about(run: str, body: AboutBody):
        return home.set_about(run, body.display_name, body.description)

    @app.post("/api/runs", status_code=202, summary="Start a new run (train new)")
    def new_run(body: NewRunBody):
        from ..models import FAMILIES, family_names
        path = home.run_path(body.name, exists=False)
        if path.exists():
            raise Conflict(f"run {body.name} exists: continue it or choose another name")
        if body.model not in family_names():
            raise Refused(f"unknown model family {body.model!r}; choose one of "
                          f"{', '.join(family_names())}")
        argv = ["train", "new", path, "--model", body.model]
        from ..models.base import OnLatents
        if issubclass(FAMILIES[body.model], OnLatents):
            if not body.upstream:
                raise Refused(f"{body.model} trains on an upstream run's latents: name one")
            argv += ["--upstream", home.run_path(body.upstream)]
        elif body.upstream:
            raise Refused(f"{body.model} trains on audio, not on an upstream run")
        if body.corpus:
            argv += ["--data", home.corpus(body.corpus)]
        elif not body.upstream:
            raise Refused("name a corpus to train on")
        for key, value in body.config.items():
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,63}", key):
                raise Refused(f"config key {key!r} is not one")
            argv += ["--set", f"{key}={json.dumps(value)}"]
        argv += budget(body.epochs, body.minutes)
        return job_view(jobs().submit("train-new", "train", argv, target=f"run:{body.name}",
                                      params=train_params(body.name, body.epochs,
                                                          body.minutes)))

    @app.post("/api/runs/{run}/train", status_code=202, summary="Train a run more "
                                                                "(train continue)")
    def train_more(run: str, body: TrainBody):
        path = home.run_path(run)
        busy_training(run)
        argv = ["train", "continue", path, *budget(body.epochs, body.minutes)]
        if body.phase:
            argv += ["--phase", home.checked_name(body.phase, "phase")]
        return job_view(jobs().submit("train-continue", "train", argv, target=f"run:{run}",
                                      params=train_params(run, body.epochs, body.minutes)))

    @app.post("/api/runs/{run}/generate", status_code=202,
              summary="Generate clips with the run's family's controls")
    def generate(run: str, body: GenerateBody):
        from ..models.base import ContinuesAudio, RequestError
        family = generating_family(home, run)
        controls = {c.name: c for c in family.controls()}
        argv = ["generate", home.run_path(run), "--n", body.n, "--seconds", body.seconds,
                "--seed", body.seed, "--checkpoint", body.checkpoint]
        if body.temperature is not None:
            argv += ["--temperature", body.temperature]
        for name, value in body.controls.items():
            if name not in controls:
                raise Refused(f"{family.name} has no control {name!r}"
                              + (f"; it has {', '.join(controls)}" if controls else ""))
            try:
                argv += [f"--{name.replace('_', '-')}", controls[name].check(value)]
            except RequestError as exc:
                raise Refused(f"{name} {exc.reason}") from None
        if body.prime:
            if not isinstance(family, ContinuesAudio):
                raise Refused(f"{family.name} does not continue audio: leave out prime")
            argv += ["--prime", home.upload(body.prime)]
        if body.match_loudness:
            argv += ["--match-loudness"]
        return submit_result_job("generate", run, argv)

    @app.post("/api/runs/{run}/interpolate", status_code=202,
              summary="Clips along the latent path between two uploads")
    def interpolate(run: str, body: InterpolateBody):
        from ..generate import continuous_encoder
        from ..models.base import RequestError
        from ..runs import Run
        try:
            continuous_encoder(Run(home.run_path(run)).family)
        except RequestError as exc:
            raise Refused(f"interpolation {exc.reason}") from None
        argv = ["generate", home.run_path(run), "--between", home.upload(body.a),
                home.upload(body.b), "--steps", body.steps, "--checkpoint", body.checkpoint]
        return submit_result_job("interpolate", run, argv)

    @app.post("/api/runs/{run}/reconstruct", status_code=202,
              summary="Encode and decode uploads through an autoencoder run")
    def reconstruct(run: str, body: ReconstructBody):
        from ..models.base import Encodes
        from ..runs import Run
        family = Run(home.run_path(run)).family
        if not isinstance(family, Encodes):
            raise Refused(f"{family.name} does not encode audio: reconstruct needs an "
                          "autoencoder run")
        argv = ["reconstruct", home.run_path(run), *map(home.upload, body.uploads),
                "--checkpoint", body.checkpoint]
        return submit_result_job("reconstruct", run, argv)

    @app.post("/api/runs/{run}/evaluate", status_code=202,
              summary="Measure the run's clips against its corpus's held-out audio")
    def evaluate(run: str, body: EvaluateBody):
        generating_family(home, run)
        argv = ["evaluate", home.run_path(run), "--n", body.n, "--seconds", body.seconds,
                "--seed", body.seed, "--checkpoint", body.checkpoint]
        return job_view(jobs().submit("evaluate", "work", argv, target=f"run:{run}",
                                      params={"run": run}))

    @app.post("/api/compare", status_code=202,
              summary="Train each family on one corpus for the same budget, and compare")
    def compare(body: CompareBody):
        from ..compare import check_entry
        from ..runs import RunError
        for entry in body.models:
            try:
                check_entry(entry)
            except RunError as exc:
                raise Refused(str(exc)) from None
        job_id = new_job_id()
        argv = ["compare", "--data", home.corpus(body.corpus), "--models", ",".join(body.models),
                "--budget-minutes", body.budget_minutes, "--out", f"results/{job_id}",
                "--n", body.n, "--seconds", body.seconds, "--seed", body.seed]
        for key, config in body.configs.items():
            if not re.fullmatch(r"[a-z0-9-]+(\+[a-z0-9-]+(:[a-z0-9-]+)?)?", key):
                raise Refused(f"configs key {key!r}: a family, or A+B:B for one stage")
            path = home.studio / "configs" / f"{job_id}-{key.replace(':', '_')}.yaml"
            path.parent.mkdir(exist_ok=True)
            path.write_text(yaml.safe_dump(config))
            argv += ["--config", f"{key}={path}"]
        return job_view(jobs().submit("compare", "train", argv, job_id=job_id,
                                      target=f"corpus:{body.corpus}",
                                      params={"corpus": body.corpus}))

    def submit_result_job(kind: str, run: str, argv: list) -> dict:
        job_id = new_job_id()
        return job_view(jobs().submit(kind, "work", [*argv, "--out", f"results/{job_id}"],
                                      job_id=job_id, target=f"run:{run}", params={"run": run}))

    # jobs -----------------------------------------------------------------------------
    @app.get("/api/jobs", summary="Recent jobs, newest first")
    def job_list(limit: int = 50):
        if not 1 <= limit <= 500:
            raise Refused("limit must be between 1 and 500")
        return [job_view(j) for j in jobs().store.recent(limit)]

    @app.get("/api/jobs/{job_id}", summary="A job: status, progress, log tail, result")
    def job(job_id: str = PathParam(pattern=JOB_ID)):
        found = jobs().store.get(job_id)
        if found is None:
            raise NotFound(f"no job {job_id}")
        return job_view(found)

    @app.post("/api/jobs/{job_id}/cancel", summary="Cancel a job (a training run keeps its "
                                                   "last complete epoch)")
    def cancel(job_id: str = PathParam(pattern=JOB_ID)):
        found = jobs().cancel(job_id)
        if found is None:
            raise NotFound(f"no job {job_id}")
        return job_view(found)

    # results --------------------------------------------------------------------------
    @app.get("/api/results/{path:path}", summary="A file of the results folder")
    def result_file(path: str):
        found = home.file_under(home.results, path)
        return FileResponse(found)

    def job_view(job: dict) -> dict:
        return jobs().view(job)

    def busy_training(run: str) -> None:
        for j in jobs().store.recent(20, target=f"run:{run}"):
            if j["kind"] in TRAIN_KINDS and j["status"] in ("queued", "running"):
                raise Conflict(f"run {run} is already being trained (job {j['id']})")

    return app


# helpers the routes share -----------------------------------------------------------
def _version() -> str:
    import musicrgan
    return musicrgan.__version__


def budget(epochs: int | None, minutes: float | None) -> list:
    if epochs and minutes:
        raise Refused("give epochs or minutes, not both")
    if minutes:
        return ["--minutes", minutes]
    return ["--epochs", epochs or 10]


def train_params(run: str, epochs: int | None, minutes: float | None) -> dict:
    return {"run": run, "epochs": None if minutes else (epochs or 10), "minutes": minutes}


def save_upload(upload: UploadFile, target: Path, limit: int) -> None:
    """Copy an upload to target, refusing it (413) past `limit` bytes."""
    written = 0
    with open(target, "wb") as out:
        while chunk := upload.file.read(MB):
            written += len(chunk)
            if written > limit:
                raise TooLarge(f"{upload.filename} is larger than {limit / MB:g} MB")
            out.write(chunk)
    if written == 0:
        raise Refused(f"{upload.filename} is empty")


class TooLarge(Refused):
    """An upload past the size limit (413)."""


class NotAudio(Refused):
    """An upload that does not decode as audio (415)."""


def check_audio(path: Path) -> float:
    """Seconds of audio in the file; NotAudio with the decoder's reason if it has none."""
    from .. import audio
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise NotAudio(f"{path.name}: not an audio file name (use one of "
                       f"{', '.join(sorted(AUDIO_SUFFIXES))})")
    try:
        clip = audio.load(path, 8000)
    except audio.AudioError as exc:
        raise NotAudio(f"{path.name} does not decode as audio: {exc}") from None
    if clip.size < 800:
        raise NotAudio(f"{path.name} holds less than 0.1 s of audio")
    return clip.size / 8000


def family_info(family) -> dict:
    from ..models.base import ContinuesAudio, Encodes, Generates, OnLatents
    generates = isinstance(family, Generates)
    return {"name": family.name,
            "generates": generates,
            "encodes": isinstance(family, Encodes),
            "interpolates": isinstance(family, Encodes) and family.latent_channels() is not None,
            "continues_audio": isinstance(family, ContinuesAudio),
            "needs_upstream": isinstance(family, OnLatents),
            "phases": list(family.phases),
            "default_temperature": family.default_temperature if generates else None,
            "controls": [{"name": c.name, "help": c.help, "low": c.low, "high": c.high}
                         for c in (family.controls() if generates else ())]}


def generating_family(home: Home, run: str):
    from ..models.base import Generates
    from ..runs import Run
    family = Run(home.run_path(run)).family
    if not isinstance(family, Generates):
        raise Refused(f"{family.name} does not generate (it is a first stage: train a "
                      "second stage on it)")
    return family


def run_summary(home: Home, name: str) -> dict:
    from ..runs import read_state, training_seconds
    config = home.run_config(name)
    state = read_state(home.run_path(name))
    history = state["history"]
    upstream = config.get("upstream", {}).get("run")
    from ..models import get_family
    return {"name": name, **home.about(name),
            "family": config["family"],
            "monitor": get_family(config["family"]).monitor,
            "corpus": home.corpus_name_of(config["data"]) or config["data"],
            "upstream": home.run_name_of(upstream) or upstream if upstream else None,
            "rate": config.get("rate"),
            "epochs": state["epochs_done"],
            "phase": state.get("phase"),
            "best": state.get("best"),
            "last": {k: v for k, v in (history[-1] if history else {}).items()
                     if "loss" in k or k in ("epoch", "steps", "seconds")},
            "training_minutes": round(training_seconds(state) / 60, 2)}


def evaluation_summary(path: Path) -> dict | None:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {k: result[k] for k in ("frechet", "loudness_matched", "descriptors", "n", "seconds")
            if k in result}


def training_base(home: Home, job: dict) -> dict:
    """A training job notes the run's epochs and seconds when it starts: its progress is
    measured from there."""
    if job["kind"] not in TRAIN_KINDS:
        return {}
    from ..runs import read_state, training_seconds
    try:
        state = read_state(home.run_path(job["params"]["run"]))
    except Exception:
        return {"start_epochs": 0, "start_seconds": 0.0}
    return {"start_epochs": state["epochs_done"], "start_seconds": training_seconds(state)}


def training_progress(home: Home, job: dict) -> float | None:
    params = job["params"]
    if job["kind"] not in TRAIN_KINDS or "start_epochs" not in params:
        return None
    from ..runs import read_state, training_seconds
    try:
        state = read_state(home.run_path(params["run"]))
    except Exception:
        return 0.0
    if params.get("minutes"):
        done = (training_seconds(state) - params["start_seconds"]) / (params["minutes"] * 60)
    else:
        done = (state["epochs_done"] - params["start_epochs"]) / params["epochs"]
    return round(min(max(done, 0.0), 1.0), 4)


def collect(home: Home, job: dict) -> dict:
    """What a finished job made, for the API: a corpus, a run, clips with their URLs, an
    evaluation or a comparison."""
    params, kind = job["params"], job["kind"]
    if kind in ("synth", "convert"):
        return {"corpus": home.describe_corpus(params["corpus"])} \
            if (home.data / params["corpus"] / "manifest.jsonl").is_file() else {}
    if kind in TRAIN_KINDS:
        return {"run": run_summary(home, params["run"])} \
            if (home.runs / params["run"] / "config.yaml").is_file() else {}
    if kind == "evaluate":
        return {"evaluation": evaluation_summary(home.run_path(params["run"]) / "eval.json")}
    folder = home.result_folder(job["id"])
    if not folder.is_dir():
        return {}
    result = {"folder": job["id"], "page": f"/api/results/{job['id']}/index.html"}
    if kind == "compare":
        from ..compare import summary_table
        summary = json.loads((folder / "compare.json").read_text())
        header, rows = summary_table(summary)
        return {**result, "best": summary["best"], "header": header, "rows": rows}
    if kind == "reconstruct":
        scores = json.loads((folder / "reconstruct.json").read_text())["files"]
        clips = [{"file": p.name} for p in sorted(folder.glob("*.wav"))]
        for clip in clips:
            clip["image"] = f"img/{Path(clip['file']).stem}.png"
        return {**result, "scores": scores, "clips": with_urls(job["id"], clips)}
    from ..report import read_listing
    return {**result, "clips": with_urls(job["id"], read_listing(folder))}


def with_urls(folder: str, clips: list[dict]) -> list[dict]:
    return [{**c, "url": f"/api/results/{folder}/{c['file']}",
             "image_url": f"/api/results/{folder}/{c['image']}" if c.get("image") else None}
            for c in clips]
