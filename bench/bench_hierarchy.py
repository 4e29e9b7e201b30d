"""The hierarchical generator's speed at the default configs, 16 kHz, 10 s of audio,
untrained weights (speed does not depend on them), batch 1 (issue 11 §6): wave-vae
decoding, whole generation through latent-vae (draw, trajectory, wave-vae decoding) and
through latent-diffusion at its default step count (DDIM from noise, then decoding), in x
real time. The baseline, in the same process: latent-vae generation, the prior
latent-diffusion is the alternative to (a diffusion prior pays its step count in calls)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, timed  # noqa: E402

from musicrgan.models import get_family  # noqa: E402
from musicrgan.models.base import GenerationRequest  # noqa: E402

RATE = 16000



def second_stage(name: str, wave, wave_model):
    cls = get_family(name)
    family = cls(cls.Config(), RATE)
    family.attach(wave, wave_model)
    return family, family.build()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    cls = get_family("wave-vae")
    wave = cls(cls.Config(), RATE)
    wave_model = wave.build()
    steps = int(args.seconds * RATE) // wave.latent_hop()
    latents = np.random.default_rng(0).standard_normal(
        (1, steps, wave.latent_channels())).astype(np.float32)
    result = {"seconds": args.seconds, "wave_vae_parameters": int(wave_model.count_params()),
              "wave_vae_decode_x_realtime": round(args.seconds / timed(
                  lambda: wave.decode(wave_model, latents)), 1)}
    request = GenerationRequest(n=1, seconds=args.seconds, seed=1)
    for name in ("latent-vae", "latent-diffusion"):
        family, model = second_stage(name, wave, wave_model)
        checked = family.checked(request)
        result[f"{name.replace('-', '_')}_parameters"] = int(model.count_params())
        result[f"{name.replace('-', '_')}_generate_x_realtime"] = round(args.seconds / timed(
            lambda: family.generate(model, checked)), 1)
    result["latent_diffusion_denoise_steps"] = get_family("latent-diffusion").Config().denoise_steps
    result["diffusion_over_latent_vae"] = round(result["latent_diffusion_generate_x_realtime"]
                                                / result["latent_vae_generate_x_realtime"], 2)
    save("hierarchy", result)


if __name__ == "__main__":
    main()
