"""Model families, registered by name. Adding a family is adding one file here (and its
import in `_load_all`) plus one test file."""

from __future__ import annotations

FAMILIES: dict[str, type] = {}


def register(cls):
    FAMILIES[cls.name] = cls
    return cls


def _load_all() -> None:
    from . import (code_prior, fft_lstm, latent_diffusion, latent_vae, lstm_gan,  # noqa: F401
                   sample_lstm, spec_vae, vqvae, wave_vae)  # (each registers itself)


def family_names() -> list[str]:
    _load_all()
    return sorted(FAMILIES)


def get_family(name: str) -> type:
    """The family class for a name; KeyError with the known names if there is none."""
    _load_all()
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; choose one of {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]
