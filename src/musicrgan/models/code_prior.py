"""`code-prior`: the generation TechnoGen never had. An autoregressive model over the code
sequences of a `vqvae` run (its upstream): a small causal Transformer
(modules/transformer.py), or an LSTM (`architecture: lstm`), trained on windows of the
upstream's latent cache to predict each code from those before it. Generation samples
codes (temperature, and the `top_k` control), a position at a time (the Transformer with
cached keys and values, the LSTM with its state), and decodes them through the upstream's
decoder; `--prime FILE` encodes the file and continues it.

Each training window starts with a start token (index = codebook size), so a window taken
anywhere in a song trains the same way generation starts. Songs longer than the context
are made in chunks: each chunk is primed with the last half-context of codes (the LSTM
carries its state instead).

best.keras is the epoch with the lowest training loss, not validation loss: on a small
corpus the prior learns its training songs by heart within an epoch or two while its loss
on held-out songs rises, and the held-out loss picked the first epoch, whose songs had lost
the rhythm; the Fréchet distance of a few validation clips picked it too (docs/compare.md,
"Which epoch of the prior")."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..modules.sampling import draw_token
from ..modules.stepper import RecurrentStepper, lstm_layers, recurrent_step_model
from ..modules.transformer import CachedSampler, causal_transformer, step_model
from ..beats import MAX_BPM, MIN_BPM, find_grid
from ..modules.beat_clock import draw_corpus_tempos
from . import register
from .base import ConfigError, ContinuesAudio, Control, LatentsConfig, OnLatents, tf

import keras  # noqa: E402
from keras import ops  # noqa: E402


@dataclass
class CodePriorConfig(LatentsConfig):
    architecture: str = "transformer"   # or "lstm"
    # codes per training window (and the Transformer's span): 2 s over vqvae's default 256x
    # (256 before 2026-12-06: 1 s at 64x; 0.5-1 s gave songs little pulse: docs/compare.md)
    context: int = 128
    width: int = 128             # model width (LSTM: units)
    blocks: int = 2              # Transformer blocks (LSTM: layers)
    heads: int = 4
    dropout: float = 0.1         # the Transformer's dropout rate in training (as GPT-2)
    shifted_views: int = 4       # four encodings of each training file (docs/compare.md)
    top_k: int = 0               # what the top_k control defaults to (0: every code)
    # the Transformer hears the beat clock at each code (as lstm-gan's networks do), from
    # the corpus's beat grids; generate then takes --bpm. On by default since 2026-12-06:
    # without it a 256x chain's songs had no pulse (docs/compare.md, "The quiet between")
    clock: bool = True
    batch_size: int = 16
    learning_rate: float = 1e-3

    def validate(self):
        super().validate()
        if self.context < 4 or min(self.width, self.blocks, self.heads) < 1:
            raise ConfigError("context must be >= 4; width, blocks and heads >= 1")
        if self.architecture not in ("transformer", "lstm"):
            raise ConfigError(f"architecture must be transformer or lstm, got "
                              f"{self.architecture!r}")
        if self.clock and self.architecture != "transformer":
            raise ConfigError("clock: true (the default) needs architecture: transformer; "
                              "set clock: false for an LSTM")
        if self.width % self.heads:
            raise ConfigError(f"width ({self.width}) must be a multiple of heads "
                              f"({self.heads})")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@register
class CodePrior(OnLatents, ContinuesAudio):
    name = "code-prior"
    Config = CodePriorConfig
    needs_prime = False   # it starts from its start token
    # a little hotter than the distribution learned: a prior trained minutes on a small
    # corpus is sure of its loops' pattern, and at 1.0 its songs' pulse overshot the
    # corpus's in half the clips (docs/compare.md, "The demo trains the chain")
    default_temperature = 1.15
    monitor = "loss"

    @property
    def uses_beats(self):
        return self.config.clock

    def accepts(self, family):
        if not family.codebook_size():
            return (f"its latents are not codes of a codebook ({family.name}'s are "
                    "continuous): a vqvae run's are")
        return None

    @property
    def start_token(self) -> int:
        return self.upstream_family.codebook_size()

    def window(self):
        return self.config.context

    def prime_length(self):
        return (self.config.context // 2 - 1) * self.upstream_family.latent_hop()

    def examples(self, codes, beats=None):
        start = ops.full((ops.shape(codes)[0], 1), self.start_token, dtype="int32")
        tokens = ops.concatenate([start, codes[:, :-1]], axis=1)
        return (tokens if beats is None else (tokens, beats)), codes

    def controls(self):
        controls = (Control("top_k", "sample each code among the k likeliest only (0: all; "
                                     "default: the run's config)", 0, 1_000_000, "K"),)
        if self.config.clock:
            controls += (Control("bpm", "tempo of every song; default: the prime's, or one "
                                        "of the training corpus's tempos per song",
                                 MIN_BPM, MAX_BPM, "BPM"),)
        return controls

    def describe(self, model, request):
        if not self.config.clock:
            return {}
        return {"bpm": [round(float(b), 2) for b in self._timing(model, request)[0]]}

    def _timing(self, model, request):
        """Each song's tempo and the beat position where its first code starts: --bpm, or
        the prime's grid (beats.find_grid) where it shows one (a prime of a few seconds: the
        default prime, half a context of codes, is often too short), or one of the corpus's
        tempos from a downbeat."""
        n, bpm = request.n, request.controls.get("bpm")
        tempos = draw_corpus_tempos(model.get_layer("clock").tempo_counts, n, request.seed, bpm)
        phase = np.zeros(n, np.float32)
        if request.prime is not None:
            with warnings.catch_warnings():  # a prime shorter than a beat has no grid
                warnings.simplefilter("ignore", RuntimeWarning)
                grids = [find_grid(p, self.rate) for p in request.prime]
            for i, grid in enumerate(grids):
                if grid.strength > 0:
                    tempos[i] = bpm or grid.bpm
                    phase[i] = grid.beat_at(0.0) * tempos[i] / grid.bpm
        return tempos, phase

    def build(self):
        c = self.config
        vocabulary = self.start_token + 1
        if c.architecture == "transformer":
            clock = (self.upstream_family.latent_hop(), self.rate) if c.clock else None
            model = causal_transformer(vocabulary, c.context, c.width, c.blocks, c.heads,
                                       name="code_prior", clock=clock, dropout=c.dropout)
        else:
            tokens = keras.Input((None,), dtype="int32", name="tokens")
            h = keras.layers.Embedding(vocabulary, c.width, name="embed")(tokens)
            for i in range(c.blocks):
                h = keras.layers.LSTM(c.width, return_sequences=True, name=f"lstm_{i}")(h)
            model = keras.Model(tokens, keras.layers.Dense(vocabulary, name="logits")(h),
                                name="code_prior")
        self.compile(model)
        return model

    def compile(self, model):
        model.compile(optimizer=keras.optimizers.Adam(self.config.learning_rate, clipnorm=1.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])

    def _sampler(self, model) -> CachedSampler:
        if getattr(self, "_sampler_of", (None, None))[0] is not model:
            self._sampler_of = (model, CachedSampler(model))
        return self._sampler_of[1]

    def _lstm_stepper(self, model, temperature: float, top_k: int) -> RecurrentStepper:
        banned = self.start_token

        def feedback(logits, seed):
            token = draw_token(logits, temperature, top_k, banned, seed)
            return token, tf.cast(token, tf.float32)

        return RecurrentStepper([layer.cell for layer in lstm_layers(model)],
                                embed=model.get_layer("embed"), head=model.get_layer("logits"),
                                feedback=feedback, jit_compile=True)

    def _lstm_codes(self, model, request, history, needed, top_k, progress, hop):
        stepper = self._lstm_stepper(model, request.temperature, top_k)
        start = np.full((request.n, 1), self.start_token, np.int32)
        prefix = np.concatenate([start, history], axis=1)
        first, x, states = stepper.prime(prefix, stepper.initial_state(request.n),
                                         seed=request.seed)
        made, chunk = [np.asarray(first).astype(np.int32)[:, None]], 1
        while sum(m.shape[1] for m in made) < needed:
            values, x, states = stepper.run(x, states, self.config.context,
                                            seed=request.seed * 7919 + chunk)
            made.append(np.asarray(values).astype(np.int32))
            chunk += 1
            if progress:
                progress(self.config.context * hop)
        return np.concatenate(made, axis=1)[:, :needed]

    def generate(self, model, request, progress=None):
        up, hop = self.upstream_family, self.upstream_family.latent_hop()
        n, samples = request.n, request.samples(self.rate)
        needed = -(-samples // hop)
        top_k = int(request.controls.get("top_k", self.config.top_k))
        if self.config.architecture == "lstm":
            history = np.zeros((n, 0), np.int32)
            if request.prime is not None:
                history = up.encode(self.upstream_model, request.prime)
            codes = self._lstm_codes(model, request, history, needed, top_k, progress, hop)
            return self._decode(codes, samples)
        half = self.config.context // 2
        history = np.zeros((n, 0), np.int32)
        if request.prime is not None:
            history = up.encode(self.upstream_model, request.prime)
        if self.config.clock:
            tempos, phase = self._timing(model, request)
        # codes so far on the songs' time line (the prime's first: the clock counts from it)
        sampler, made, chunk, elapsed = self._sampler(model), [], 0, history.shape[1]
        history = history[:, -(half - 1):]
        while sum(m.shape[1] for m in made) < needed:
            start = np.full((n, 1), self.start_token, np.int32)
            # the start token and up to half a context of the codes before (a prime shorter
            # than that too): the compiled loop traces once for the first chunk's prefix
            # length and once for every later chunk's
            prefix = np.concatenate([start, history[:, -(half - 1):]], axis=1)
            beats = None
            if self.config.clock:
                first = (elapsed - (prefix.shape[1] - 1)) * hop / self.rate  # seconds
                beats = np.stack([tempos, phase + first * tempos / 60.0], axis=1)
            codes = sampler.sample(prefix, self.config.context - prefix.shape[1],
                                   request.temperature, top_k, request.seed * 7919 + chunk,
                                   banned=self.start_token, beats=beats)
            elapsed += codes.shape[1]
            made.append(codes)
            history = np.concatenate([history, codes], axis=1)[:, -(half - 1):]
            chunk += 1
            if progress:
                progress(codes.shape[1] * hop)
        return self._decode(np.concatenate(made, axis=1)[:, :needed], samples)

    def _decode(self, codes, samples):
        audio = self.upstream_family.decode_in_pieces(self.upstream_model, codes)
        return self.finished(audio, samples)

    def exports(self, model):
        """One sampling step with its cache (the Transformer's keys and values, the LSTM's
        states), and the upstream's decoder that turns the codes into audio."""
        step = step_model(model) if self.config.architecture == "transformer" \
            else recurrent_step_model(model, keras.Input((), dtype="int32", name="token"),
                                      model.get_layer("embed"), model.get_layer("logits"),
                                      output="logits")
        return {"step": step,
                "decoder": self.upstream_family.exports(self.upstream_model)["decoder"]}

    def export_notes(self, model):
        c = self.config
        notes = {}
        if c.clock:
            low, high = (float(v) for v in np.asarray(model.get_layer("clock").tempo_range))
            notes["beats"] = ("(batch, 2): the tempo in BPM and the beat position (0: on a "
                              "downbeat) where the window's first code starts (the code "
                              "predicted at position 0): in a window primed with earlier "
                              f"codes, the first of those; trained on {low:.1f}-{high:.1f} BPM")
        return notes | {"start_token": self.start_token, "vocabulary": self.start_token + 1,
                "context": c.context, "architecture": c.architecture,
                "samples_per_code": self.upstream_family.latent_hop(),
                "step": ("feed the start token at position 0 with zero caches, then each "
                         "drawn code at the next position with the caches the step returned "
                         "(softmax(logits / temperature), never the start token); positions "
                         f"stop below the context ({c.context}): start a new window primed "
                         "with the last codes to go on") if c.architecture == "transformer"
                else ("feed the start token with zero states, then each drawn code with the "
                      "states the step returned (softmax(logits / temperature), never the "
                      "start token)"),
                "decoder": "codes (batch, steps) -> audio (batch, steps * samples_per_code)"}
