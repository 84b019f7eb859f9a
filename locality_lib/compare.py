"""Side-by-side agreement of denoisers with a reference (the UNet), per timestep, under two protocols.

* ``"forward"`` (protocol a): held-out images ``x0 [B, C, H, W]`` noised at each t with one fixed
  noise draw shared by every t and model: ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.
* ``"trajectory"`` (protocol b): the reference's own DDIM trajectory from ``x_T [B, C, H, W]``:
  the inputs are ``ddim_sample(reference, x_T, schedule, ...).xt[k]`` at its timesteps ``t_k``.

At every input, each model and the reference give an x0-estimate (unclipped) and
``r2(pred, ref)``, ``pearson_r(pred, ref)``, ``mse(pred, ref)`` are recorded (``metrics.py``),
``ref = reference(x_t, t)``: r2 = 1, r = 1, mse = 0 mean "the same as the reference".
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ._checks import check_choice, check_images, check_timestep
from .metrics import mse, pearson_r, r2
from .sampling import ddim_sample
from .schedule import DDPMSchedule

__all__ = ["compare_models", "Comparison", "METRICS", "markdown_table"]

#: The agreement metrics, and whether a larger value means closer to the reference.
METRICS = {"r2": (r2, True), "pearson_r": (pearson_r, True), "mse": (mse, False)}


@dataclass
class Comparison:
    """What :func:`compare_models` measured.

    ``metrics[metric][model]``: ``[T]`` float64 array (one value per timestep, averaged over the B images);
    ``inputs``, ``reference``: ``[T, B, C, H, W]``; ``predictions[model]``: ``[T, B, C, H, W]`` (CPU float32);
    ``seconds[model]``: wall time of that model's calls summed over the T timesteps
    (``reference_seconds`` likewise for the reference).
    """

    protocol: str
    timesteps: list[int]
    metrics: dict[str, dict[str, np.ndarray]]
    seconds: dict[str, float]
    reference_seconds: float
    inputs: torch.Tensor
    reference: torch.Tensor
    predictions: dict[str, torch.Tensor]

    def best(self, metric: str = "r2") -> list[str]:
        """The model closest to the reference at each timestep (max r2 / r, min mse); ties go to the first model."""
        check_choice(metric, "metric", tuple(METRICS))
        names = list(self.metrics[metric])
        vals = np.stack([self.metrics[metric][n] for n in names])  # [M, T]
        idx = vals.argmax(0) if METRICS[metric][1] else vals.argmin(0)
        return [names[i] for i in idx]

    def table(self, metric: str = "r2", digits: int = 3) -> str:
        """A Markdown table: one row per model, one column per timestep, the winner of each column in bold."""
        check_choice(metric, "metric", tuple(METRICS))
        winners = self.best(metric)
        rows = []
        for name, vals in self.metrics[metric].items():
            cells = [f"{v:.{digits}g}" if metric == "mse" else f"{v:.{digits}f}" for v in vals]
            rows.append([name] + [f"**{c}**" if w == name else c for c, w in zip(cells, winners)])
        return markdown_table(["model"] + [f"t = {t}" for t in self.timesteps], rows)


def markdown_table(headers: list, rows: list[list]) -> str:
    """A Markdown table from a header row and rows of cells (converted with ``str``), for ``IPython.display.Markdown``."""
    if any(len(r) != len(headers) for r in rows):
        raise ValueError(f"every row must have {len(headers)} cells, like the header")
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _timed(den, x, t):
    start = time.perf_counter()
    with torch.no_grad():
        out = den(x, t)
    return out, time.perf_counter() - start


def compare_models(
    models: dict,
    reference,
    images: torch.Tensor,
    schedule: DDPMSchedule,
    timesteps: list[int] | None = None,
    protocol: str = "forward",
    seed: int = 0,
    num_steps: int = 10,
    spacing: str = "leading",
) -> Comparison:
    """Agreement of every ``models[name](x_t, t) -> x0_hat`` with ``reference(x_t, t)``, timestep by timestep.

    ``images``: protocol ``"forward"``: clean held-out images ``x0 [B, C, H, W]`` in [-1, 1], noised
    with ``eps ~ N(0, I)`` drawn once from ``seed``; ``timesteps`` is required.
    Protocol ``"trajectory"``: the start noise ``x_T [B, C, H, W]``; the reference samples with
    ``ddim_sample(reference, x_T, schedule, num_steps, spacing, timesteps=timesteps)`` (clipped
    x0-estimates inside the step, as the paper) and the models are evaluated on its inputs ``xt[k]``.
    Returns a :class:`Comparison` (metrics ``[T]`` per model, predictions, wall times).
    """
    check_choice(protocol, "protocol", ("forward", "trajectory"))
    check_images(images, "images")
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {name: denoiser}")
    if not isinstance(schedule, DDPMSchedule):
        raise ValueError(f"schedule must be a DDPMSchedule, got {type(schedule).__name__}")
    if protocol == "forward":
        if not timesteps:
            raise ValueError("protocol 'forward' needs a non-empty list of timesteps")
        ts = [check_timestep(int(t), schedule.num_steps) for t in timesteps]
        g = torch.Generator().manual_seed(seed)
        eps = torch.randn(images.shape, generator=g).to(images.device, images.dtype)
        inputs = torch.stack([schedule.add_noise(images, t, eps) for t in ts])
    else:
        traj = ddim_sample(reference, images, schedule, num_steps, spacing, timesteps=timesteps)
        ts, inputs = list(traj.timesteps), traj.xt

    refs, ref_seconds = [], 0.0
    for x, t in zip(inputs, ts):
        out, s = _timed(reference, x, t)
        refs.append(out)
        ref_seconds += s
    metrics = {m: {} for m in METRICS}
    seconds, predictions = {}, {}
    for name, den in models.items():
        preds, seconds[name] = [], 0.0
        for x, t, ref in zip(inputs, ts, refs):
            out, s = _timed(den, x, t)
            seconds[name] += s
            preds.append(out)
        for m, (fn, _) in METRICS.items():
            metrics[m][name] = np.array([fn(p, ref) for p, ref in zip(preds, refs)], dtype=np.float64)
        predictions[name] = torch.stack(preds).detach().float().cpu()
    return Comparison(
        protocol=protocol, timesteps=[int(t) for t in ts], metrics=metrics, seconds=seconds,
        reference_seconds=ref_seconds, inputs=inputs.detach().float().cpu(),
        reference=torch.stack(refs).detach().float().cpu(), predictions=predictions,
    )
