"""Diffusion's noise schedules and samplers, written once for numpy arrays and torch tensors alike: training
and the picture after it run them in torch, `udlc sample` in numpy around the exported denoiser, and the
tests hold the two step by step with the same noise. No torch import here.

Forward process (Ho et al. 2020): x_t = sqrt(ā_t) x_0 + sqrt(1 - ā_t) ε, ā_t = Π_{s ≤ t} (1 - β_s).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

COSINE_OFFSET = 0.008  # Nichol & Dhariwal (2021): keeps β small near t = 0
MAX_BETA = 0.999


def alphas_cumprod(schedule: str, steps: int) -> np.ndarray:
    """ā_t for t = 0..steps-1 (float64). `linear`: β from 1e-4 to 0.02 (for 1000 steps; scaled by 1000/steps
    so that fewer steps still end near pure noise); `cosine`: ā_t = f(t+1)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2)."""
    if schedule == "linear":
        scale = 1000.0 / steps
        betas = np.linspace(1e-4 * scale, 0.02 * scale, steps, dtype=np.float64)
    elif schedule == "cosine":
        f = np.cos((np.arange(steps + 1, dtype=np.float64) / steps + COSINE_OFFSET) / (1 + COSINE_OFFSET)
                   * math.pi / 2) ** 2
        betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, MAX_BETA)
    else:
        raise ValueError(f"unknown noise schedule {schedule!r}")
    return np.cumprod(1.0 - np.minimum(betas, MAX_BETA))


def timesteps(steps: int, sample_steps: int) -> list[int]:
    """The steps a sampler visits, from the noisiest (steps - 1) down to 0, evenly spaced."""
    return sorted({int(round(t)) for t in np.linspace(0, steps - 1, sample_steps)}, reverse=True)


def sample(x: Any, denoise: Callable[[Any, int], Any], abar: np.ndarray, sampler: str, times: list[int],
           noise: Callable[[Any], Any], clip: Callable[[Any], Any] | None = None) -> Any:
    """From x = x_T ~ N(0, I) to a sample, visiting `times` (descending). `denoise(x, t)` predicts ε;
    `noise(x)` draws N(0, I) shaped like x (ddpm only); `clip` bounds each predicted x_0 (then ε is
    re-derived from it). ddpm: ancestral steps with the posterior variance β̃ (respaced when `times` skips
    steps); ddim: the deterministic η = 0 update (Song et al. 2021)."""
    for i, t in enumerate(times):
        a_t = float(abar[t])
        a_prev = float(abar[times[i + 1]]) if i + 1 < len(times) else 1.0
        eps = denoise(x, t)
        x0 = (x - math.sqrt(1.0 - a_t) * eps) / math.sqrt(a_t)
        if clip is not None:
            x0 = clip(x0)
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1.0 - a_t)
        if sampler == "ddim":
            x = math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps
            continue
        beta = 1.0 - a_t / a_prev
        # the mean of q(x_prev | x_t, x_0), in its x_0 form (equal to the ε form when nothing is clipped)
        x = (math.sqrt(a_prev) * beta / (1.0 - a_t)) * x0 + (math.sqrt(1.0 - beta) * (1.0 - a_prev) / (1.0 - a_t)) * x
        if i + 1 < len(times):
            x = x + math.sqrt(beta * (1.0 - a_prev) / (1.0 - a_t)) * noise(x)
    return x


def guided(eps_conditional: Any, eps_unconditional: Any, guidance: float) -> Any:
    """Classifier-free guidance (Ho & Salimans 2022): ε_u + w (ε_c - ε_u); w = 1 is the conditional model."""
    return eps_unconditional + guidance * (eps_conditional - eps_unconditional)
