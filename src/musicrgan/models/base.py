"""What every model family shares: its config, the family interface, and the capabilities a
family can have, as types: `Generates` (serves a GenerationRequest, declares its own
controls), `ContinuesAudio` (generation continues priming audio), `Encodes` (audio to
latents and back, hence reconstruction). Commands ask `isinstance(family, Encodes)`, never a
flag; a family with several capabilities inherits several."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..audio import limit_peaks
from .. import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402

from ..modules import replicas  # noqa: E402


class ConfigError(ValueError):
    """A config key or value the family does not accept."""


@dataclass
class TrainConfig:
    """Training settings every family has. Families subclass this with their own fields."""
    batch_size: int = 16
    learning_rate: float = 1e-3
    steps_per_epoch: int = 100
    validation_steps: int = 10
    patience: int = 5           # epochs without a better val_loss before stopping early
    sample_every: int = 0       # write an audio sample every N epochs (0: never)
    sample_seconds: float = 2.0
    seed: int | None = None     # fixes data order and initial weights
    # "linear": over each training session the learning rate falls linearly from
    # learning_rate to zero at its end (its time budget or its epochs, whichever ends it
    # first): the budgeted-training schedule (Li et al., ICLR 2020); "constant": throughout
    lr_schedule: str = "constant"
    # decay of the moving average of the weights that validation measures and checkpoints
    # keep (averaging.WeightAverage; 0: none, the last step's weights)
    weight_average: float = 0.0

    @classmethod
    def from_dict(cls, values: dict | None):
        values = dict(values or {})
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)} for this family; "
                              f"known: {', '.join(sorted(names))}")
        for key, value in values.items():
            values[key] = _checked(key, value, names[key].type)
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"config {f.name} must not be negative, got {value}")
        if self.batch_size < 1 or self.steps_per_epoch < 1 or self.learning_rate <= 0:
            raise ConfigError("batch_size and steps_per_epoch must be >= 1, learning_rate > 0")
        if self.lr_schedule not in ("constant", "linear"):
            raise ConfigError(f"lr_schedule must be constant or linear, got {self.lr_schedule}")
        if not 0 <= self.weight_average < 1:
            raise ConfigError(f"weight_average must be 0 (none) or a decay below 1, got "
                              f"{self.weight_average}")


@dataclass
class LatentsConfig(TrainConfig):
    """Settings of a second stage (OnLatents)."""
    # the upstream's encodings of the train split it trains on: the files as they are and
    # shifted by k/V of a latent step, k < V (latents.py: augmentation for small corpora)
    shifted_views: int = 1

    def validate(self) -> None:
        super().validate()
        if self.shifted_views < 1:
            raise ConfigError(f"shifted_views must be >= 1, got {self.shifted_views}")


def check_whole_numbers(name: str, values) -> None:
    """ConfigError unless `values` is a non-empty list of whole numbers >= 1 (strides,
    periods)."""
    if not isinstance(values, list) or not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ConfigError(f"{name} must be a list of whole numbers >= 1, got {values!r}")


_KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false",
          "str": "a string"}


def _checked(key: str, value, annotation) -> object:
    """`value` as the type a config field declares ("int", "float | None", ...), or a
    ConfigError naming the key, the type wanted and the value given."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    if value is None and "None" in kinds:
        return None
    kind = kinds[0]
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool),
          "str": isinstance(value, str)}.get(kind, True)
    if not ok:
        wanted = _KINDS.get(kind, kind) + (" or null" if "None" in kinds else "")
        raise ConfigError(f"config {key} must be {wanted}, got {value!r}")
    return float(value) if kind == "float" else value


class RunningMeans:
    """For a keras.Model with a train_step of its own: `start_tracking(names)` makes one
    running mean per name, which are the model's metrics; `_track(*values)` updates them in
    that order and returns the logs."""

    def start_tracking(self, names) -> None:
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _track(self, *values) -> dict:
        for tracker, value in zip(self.trackers.values(), values):
            tracker.update_state(value)
        return replicas.agreed({name: t.result() for name, t in self.trackers.items()})


class WithCritic:
    """For a keras.Model trained against a `discriminator` with an optimizer of its own:
    `compile(optimizer, critic_optimizer)` builds both at once (on `trained_weights()` and
    on the discriminator's), so that a checkpoint's optimizer state has somewhere to load,
    and both are saved with the model. critic_optimizer None: no discriminator yet."""

    def trained_weights(self) -> list:
        raise NotImplementedError

    def compile(self, optimizer=None, critic_optimizer=None, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self.critic_optimizer = critic_optimizer
        self.optimizer.build(self.trained_weights())
        if critic_optimizer is not None:
            critic_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        critic = self.critic_optimizer
        return {"optimizer": keras.saving.serialize_keras_object(self.optimizer),
                "critic_optimizer": None if critic is None
                else keras.saving.serialize_keras_object(critic)}

    def compile_from_config(self, config):
        # "generator_optimizer": what lstm-gan checkpoints before 2026-11-30 call it
        optimizer = config.get("optimizer", config.get("generator_optimizer"))
        critic = config.get("critic_optimizer")
        self.compile(optimizer=keras.saving.deserialize_keras_object(optimizer),
                     critic_optimizer=None if critic is None
                     else keras.saving.deserialize_keras_object(critic))


class MadeOfNetworks:
    """For a keras.Model made of sub-models passed first to its constructor (a diffusion
    model's denoiser; a GAN's generator and discriminator, an autoencoder's encoder and
    decoder; one may be None until it exists: wave-vae's discriminator), named by NETWORKS,
    with its other settings in SETTINGS: get_config and from_config, so it saves and loads
    as a .keras file."""
    NETWORKS: tuple[str, ...] = ()
    SETTINGS: tuple[str, ...] = ()

    def get_config(self):
        return {**super().get_config(),
                **{name: keras.saving.serialize_keras_object(getattr(self, name))
                   for name in self.NETWORKS},
                **{name: getattr(self, name) for name in self.SETTINGS}}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # (a network a model of an earlier version did not have yet is None)
        networks = [keras.saving.deserialize_keras_object(config.pop(name, None))
                    for name in cls.NETWORKS]
        return cls(*networks, **config)


class RequestError(ValueError):
    """A generation request a family cannot serve. `field` is the request's field or the
    family's control it is about (the command line names it as a flag); `reason` says what
    is wrong and what would do."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field} {reason}")
        self.field, self.reason = field, reason


# what one request may ask: beyond these, memory or time would run away (issue 14)
MAX_SONGS, MAX_SECONDS, MAX_TEMPERATURE = 1000, 600, 100


@dataclass(frozen=True)
class Control:
    """A setting of generation that a family has and others lack (lstm-gan's tempo): the
    command line and the server offer exactly the controls of the run's family."""
    name: str
    help: str
    low: float
    high: float
    metavar: str = "X"

    def check(self, value) -> float:
        if not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            raise RequestError(self.name, f"must be between {self.low:g} and {self.high:g}, "
                                          f"got {value!r}")
        return float(value)


@dataclass
class GenerationRequest:
    """What to generate. `prime` is audio at the family's rate, one row per song, that the
    songs continue (families that `ContinuesAudio`); `controls` the family's own settings by
    name; temperature None means the family's default."""
    n: int = 3
    seconds: float = 10.0
    seed: int = 0
    temperature: float | None = None
    prime: np.ndarray | None = None
    controls: dict = field(default_factory=dict)

    def check(self) -> None:
        """Refuse, before any work, what cannot be done or would not end."""
        if not 1 <= self.n <= MAX_SONGS:
            raise RequestError("n", f"must be between 1 and {MAX_SONGS}, got {self.n}")
        if not 0 < self.seconds <= MAX_SECONDS:
            raise RequestError("seconds", f"must be above 0 and at most {MAX_SECONDS} (10 "
                                          f"minutes) per song, got {self.seconds:g}")
        if self.temperature is not None and not 0 <= self.temperature <= MAX_TEMPERATURE:
            raise RequestError("temperature", f"must be between 0 and {MAX_TEMPERATURE}, got "
                                              f"{self.temperature:g}")

    def samples(self, rate: int) -> int:
        return int(round(self.seconds * rate))


class Family:
    """A model family: config, model, training examples, generation.

    Subclasses set `name` and `Config`, and implement the methods below. Everything else in
    musicrgan (data, runs, CLI) knows families only through this interface.
    """
    name: str = ""
    Config: type = TrainConfig
    monitor: str = "val_loss"   # what best.keras and early stopping watch
    # True: training windows come with their beat grid, and `examples` takes (windows, beats)
    uses_beats: bool = False
    # a family that trains in phases names them in order (`train continue --phase`); the
    # first is where a new run starts
    phases: tuple[str, ...] = ()

    def __init__(self, config: TrainConfig, rate: int):
        self.config, self.rate = config, int(rate)

    def window(self) -> int:
        """Samples per training window."""
        raise NotImplementedError

    def examples(self, windows):
        """A batch of windows (batch, window) → what `model.fit` takes, inside tf.data."""
        raise NotImplementedError

    def build(self) -> keras.Model:
        """A new, compiled model."""
        raise NotImplementedError

    def compile(self, model: keras.Model) -> None:
        raise NotImplementedError

    def enter_phase(self, model: keras.Model, phase: str) -> keras.Model:
        """The compiled model the next phase trains, made from the last phase's model."""
        raise NotImplementedError

    def budget_phases(self) -> tuple[tuple[str | None, float], ...]:
        """How a run trained on one budget (compare, a chain's first stage) spends it: each
        phase in order with the share of the budget spent when it ends (None: a family
        without phases). By default all of it in the first phase."""
        return ((self.phases[0] if self.phases else None, 1.0),)

    def callbacks(self, data: str) -> list:
        """Keras callbacks training adds before its own (which reads `monitor` from the
        logs): a family can put a validation measure of its own there."""
        return []

    def traced(self, model: keras.Model, name: str, fn, *signature):
        """`fn` as a graph traced once per model for inputs of `signature` (tf.TensorSpecs
        with free batch and length): about twice the speed of eager calls at batch 1 for
        vqvae's networks (bench/bench_two_stage.py)."""
        graphs = self.__dict__.setdefault("_graphs", {})
        if name not in graphs or graphs[name][0] is not model:
            graphs[name] = (model, tf.function(fn, input_signature=list(signature)))
        return graphs[name][1]

    def exports(self, model: keras.Model) -> dict[str, keras.Model]:
        """The networks a user needs outside musicrgan, by name, each a Keras model with
        named inputs and outputs (`musicrgan export` writes each in the format asked): by
        default the trained model itself."""
        return {"model": model}

    def cannot_export(self, fmt: str) -> str | None:
        """Why format `fmt` (saved_model, onnx, litert) cannot carry this family's networks,
        or None if it can."""
        return None

    def export_notes(self, model: keras.Model) -> dict:
        """What a user of the exported networks needs to know beside their inputs and
        outputs (samples per code, the start token, ...)."""
        return {}


class Generates(Family):
    """A family that makes new audio from a GenerationRequest."""
    # what temperature means differs by family; the value a request without one gets
    default_temperature: float = 1.0

    def controls(self) -> tuple[Control, ...]:
        """The family's own generation settings (beyond n, seconds, seed, temperature)."""
        return ()

    def generate(self, model: keras.Model, request: GenerationRequest,
                 progress=None) -> np.ndarray:
        """(request.n, request.samples(rate)) float32 audio in [-1, 1], for a request that
        `checked` has passed. progress(k) is called as k more samples are done."""
        raise NotImplementedError

    def finished(self, audio, samples: int) -> np.ndarray:
        """What `generate` returns of the audio it made: each song's first `samples`, float32,
        its peaks held under full scale."""
        return limit_peaks(np.asarray(audio[:, :samples], np.float32), self.rate)

    def describe(self, model: keras.Model, request: GenerationRequest) -> dict:
        """Per-song values worth recording beside each song (lstm-gan: each one's tempo),
        as {name: list of n values}."""
        return {}

    def checked(self, request: GenerationRequest) -> GenerationRequest:
        """The request with the family's defaults filled in, or RequestError for a field or
        control this family cannot serve."""
        request.check()
        controls = {c.name: c for c in self.controls()}
        values = {}
        for name, value in request.controls.items():
            if value is None:
                continue
            if name not in controls:
                has = ", ".join(controls) or "none"
                raise RequestError(name, f"is not a control of {self.name} runs (theirs: {has})")
            values[name] = controls[name].check(value)
        if request.prime is not None and not isinstance(self, ContinuesAudio):
            raise RequestError("prime", f"is not taken by {self.name}, which generates from "
                                        "noise")
        temperature = self.default_temperature if request.temperature is None \
            else request.temperature
        return dataclasses.replace(request, temperature=float(temperature), controls=values)


class SamplesPrior(Generates):
    """Generates by drawing every latent step from N(0, temperature²) and decoding the draws:
    for an autoencoder whose continuous latents are held to that prior (wave-vae,
    latent-vae). Needs `latent_hop`, `latent_channels` and `decode` (of `Encodes`)."""

    def generate(self, model, request, progress=None):
        samples = request.samples(self.rate)
        steps = -(-samples // self.latent_hop())
        rng = np.random.default_rng(request.seed)
        latents = request.temperature * rng.standard_normal(
            (request.n, steps, self.latent_channels())).astype(np.float32)
        audio = self.decode(model, latents)
        if progress:
            progress(samples)
        return self.finished(audio, samples)


class ContinuesAudio(Generates):
    """Generation can continue priming audio (a file's). A family that cannot start from
    nothing primes from the corpus when the request has no prime (`needs_prime`)."""
    needs_prime: bool = True

    def prime_length(self) -> int:
        """Samples of priming audio used when the request names no length."""
        return self.window()


class OnLatents(Family):
    """A second stage: trains on the latents of an upstream run whose family `Encodes`
    (`train new --upstream RUN`), and turns what it makes back into audio through that
    run's decoder. The run attaches the upstream before the family trains or generates."""
    upstream_family: "Encodes | None" = None
    upstream_model: keras.Model | None = None

    def attach(self, family: "Encodes", model: keras.Model) -> None:
        self.upstream_family, self.upstream_model = family, model

    def accepts(self, family: "Encodes") -> str | None:
        """Why this family cannot train on `family`'s latents, or None if it can."""
        return None


# latent steps of context on each side of a piece decoded or encoded on its own: more than
# the receptive field of the convolutional stacks (modules/conv: about 8 latent steps at
# their default strides), so that pieces agree where they overlap
PIECE_MARGIN = 32
DECODE_STEPS = 8192  # latent steps decoded at once: memory flat in a song's length


def pieces(total: int, size: int, margin: int = PIECE_MARGIN):
    """[start, end) of each piece when `total` steps are cut into pieces of `size` (at
    least 2 x margin; a last piece shorter than that joins the one before), with the
    [start, end) of the context each is computed over: 2 x margin more on each side, within
    the whole."""
    size = max(size, 2 * margin)
    starts = list(range(0, total, size))
    if len(starts) > 1 and total - starts[-1] < 2 * margin:
        starts.pop()
    ends = starts[1:] + [total]
    return [(s, e, max(0, s - 2 * margin), min(total, e + 2 * margin))
            for s, e in zip(starts, ends)]


class Encodes(Family):
    """Audio to latents and back: what reconstruction, a latent cache for a second stage,
    and interpolation stand on."""

    def encode(self, model: keras.Model, audio: np.ndarray) -> np.ndarray:
        """(batch, samples) audio at the family's rate → (batch, steps, channels) latents."""
        raise NotImplementedError

    def decode(self, model: keras.Model, latents: np.ndarray) -> np.ndarray:
        """Latents as `encode` gives them → (batch, samples) audio."""
        raise NotImplementedError

    def latent_hop(self) -> int:
        """Samples of audio per latent step."""
        raise NotImplementedError

    def codebook_size(self) -> int | None:
        """For a family whose latents are codes of a codebook (integers below this): its
        size; None for continuous latents."""
        return None

    def latent_channels(self) -> int | None:
        """Channels of each continuous latent step; None for codes of a codebook."""
        return None

    def cached_posterior(self) -> bool:
        """True if a second stage's latent cache holds the posterior of each step, its means
        then its log variances (2 x the latent channels), not `encode`'s latents."""
        return False

    def cache_latents(self, model: keras.Model, audio: np.ndarray) -> np.ndarray:
        """What the latent cache holds for (batch, samples) audio: `encode`'s latents, or
        with `cached_posterior` the posterior's means and log variances."""
        return self.encode(model, audio)

    def whole_steps(self, audio: np.ndarray) -> np.ndarray:
        """(batch, samples) float32 audio padded with silence to whole latent steps."""
        audio = np.asarray(audio, np.float32)
        pad = -audio.shape[1] % self.latent_hop()
        return np.pad(audio, ((0, 0), (0, pad))) if pad else audio

    def decode_in_pieces(self, model: keras.Model, latents: np.ndarray,
                         steps: int = DECODE_STEPS, margin: int = PIECE_MARGIN) -> np.ndarray:
        """`decode` at most `steps` + 4 x margin latent steps at a time (memory flat in the
        length), without seams: each piece is decoded with 2 x margin steps of its
        neighbours' on each side, and neighbours are crossfaded over the 2 x margin steps
        around their join. A convolutional decoder's receptive field is under the margin,
        so there the pieces are what decoding the whole gives, and the crossfade changes
        nothing; Griffin-Lim's phases, drawn anew for each piece, are faded, not cut."""
        latents = np.asarray(latents)
        total, hop = latents.shape[1], self.latent_hop()
        cuts = pieces(total, steps, margin)
        if len(cuts) == 1:
            return self.decode(model, latents)
        fade = (np.arange(2 * margin * hop) + 0.5) / (2 * margin * hop)
        audio = None
        for start, end, first, last in cuts:
            piece = self.decode(model, latents[:, first:last])
            if audio is None:
                audio = np.zeros((latents.shape[0], total * hop), piece.dtype)
            low, high = max(0, start - margin), min(total, end + margin)
            weight = np.ones((high - low) * hop, np.float32)
            if start > 0:
                weight[:fade.size] = fade
            if end < total:
                weight[-fade.size:] = fade[::-1]
            audio[:, low * hop:high * hop] += (
                piece[:, (low - first) * hop:(high - first) * hop] * weight)
        return audio

    def reconstruct(self, model: keras.Model, audio: np.ndarray) -> np.ndarray:
        return self.decode(model, self.encode(model, audio))[:, :audio.shape[1]]
