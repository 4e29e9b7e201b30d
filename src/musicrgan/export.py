"""`musicrgan export RUN --format saved_model|onnx|litert --out DIR`: what a user needs of a
run outside musicrgan, through Keras 3's `Model.export`. Which networks that is, the family
says (`Family.exports`): an autoencoder's encoder and decoder, the code prior's sampling
step with its cache (and its upstream's decoder), lstm-gan's averaged generator, the LSTM
regressors' step with its state. DIR gets one file (a folder for saved_model) per network and
DIR/export.json: each network's inputs and outputs in order, with their shapes and types,
and the family's notes on how to use them.

Each network is written under a temporary name and renamed when whole, so an interrupted
export leaves no artifact that looks finished; export.json is written last."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

from .audio import atomic_write_text
from .models.base import RequestError
from .runs import Run, RunError, writable_folder

log = logging.getLogger(__name__)

# our name → (Keras's name, file suffix, packages it needs beyond TensorFlow)
FORMATS = {
    "saved_model": ("tf_saved_model", "", ()),
    "onnx": ("onnx", ".onnx", ("tf2onnx", "onnx")),
    "litert": ("litert", ".tflite", ()),
}
MANIFEST = "export.json"


class ExportUnavailable(RunError):
    """The format cannot be written here, or cannot carry a family's network."""


def _describe(tensors, names=None) -> list[dict]:
    return [{"name": name or t.name,
             "shape": [None if d is None else int(d) for d in t.shape],
             "dtype": str(t.dtype)} for t, name in zip(tensors, names or [None] * len(tensors))]


def export(run: Run | Path, fmt: str, out: Path, checkpoint: str = "best") -> dict:
    """Write the run's networks in `fmt` into `out`; returns what export.json says."""
    run = run if isinstance(run, Run) else Run(run)
    if fmt not in FORMATS:
        raise RequestError("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    keras_format, suffix, needs = FORMATS[fmt]
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportUnavailable(f"{fmt} export needs the {' and '.join(missing)} package(s): "
                                "pip install 'musicrgan[export]'")
    family = run.family
    reason = family.cannot_export(fmt)
    if reason:
        raise ExportUnavailable(f"{fmt} cannot carry {family.name}: {reason}")
    model = run.model(checkpoint)
    networks = family.exports(model)
    out = writable_folder(out, "output folder")
    written = {}
    for name, network in networks.items():
        target = out / f"{name}{suffix}"
        partial = out / f".{name}.partial{suffix}"  # the exporters want their suffix
        _remove(partial)
        try:
            network.export(str(partial), format=keras_format, verbose=False,
                           input_signature=_signature(network))
        except Exception as exc:  # the converters raise anything; the user needs one line
            _remove(partial)
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ExportUnavailable(f"{fmt} cannot carry {family.name}'s {name}: {reason}") \
                from exc
        _remove(target)
        partial.rename(target)
        outputs = [layer.name for layer in _output_layers(network)]
        written[name] = {"file": target.name, "inputs": _describe(network.inputs),
                         "outputs": _describe(network.outputs, outputs)}
        log.info("wrote %s", target)
    manifest = {"run": str(run.path), "family": family.name, "checkpoint": checkpoint,
                "epochs": run.state.get("epochs_done"), "format": fmt, "rate": family.rate,
                "networks": written, "notes": family.export_notes(model),
                "outputs": "in the order listed: saved_model's serve() returns them as a "
                           "list, onnx names them by position, litert's signature runner "
                           "calls them output_0, output_1, ..."}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _signature(network) -> list:
    """The network's inputs as the exporters take them (given, the onnx exporter need not
    have seen the network called)."""
    import tensorflow as tf
    specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in network.inputs]
    return [specs if len(specs) > 1 else specs[0]]


def _output_layers(network):
    """The layers that make the network's outputs (their names are the outputs' names)."""
    return [t._keras_history.operation for t in network.outputs]


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
