"""Side-by-side agreement of denoisers with a reference (the UNet), per timestep, under two protocols.

* ``"forward"`` (protocol a): held-out images ``x0 [B, C, H, W]`` noised at each t with one fixed
  noise draw shared by every t and model: ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.
* ``"trajectory"`` (protocol b): the reference's own DDIM trajectory from ``x_T [B, C, H, W]``:
  the inputs are ``ddim_sample(reference, x_T, schedule, ...).xt[k]`` at its timesteps ``t_k``.

At every input, each model and the reference give an x0-estimate (unclipped) and
``r2(pred, ref)``, ``pearson_r(pred, ref)``, ``mse(pred, ref)`` are recorded (``metrics.py``),
``ref = reference(x_t, t)``: r2 = 1, r = 1, mse = 0 mean "the same as the reference".

:func:`paper_protocol` is the locality paper's headline measure (its code's ``r2_score_vs_unet_final``):
model and reference each run their own 10-step DDIM (leading spacing, x0 clipped in the step, the last
x0-estimate returned) from the same initial noise per seed, and the final samples are compared per image
with ``1 - ||x - y||^2 / (D Var(y))``, ``y`` the reference's sample, ``Var`` unbiased (``D - 1``).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._checks import check_choice, check_images, check_timestep
from .base import denoiser_label
from .metrics import mse, pearson_per_image, pearson_r, r2, r2_per_image
from .sampling import ddim_sample
from .schedule import DDPMSchedule

__all__ = ["compare_models", "Comparison", "METRICS", "markdown_table", "paper_protocol", "PaperProtocol",
           "paper_noise", "bootstrap_interval", "summarize", "summarize_two_way", "load_paper_results",
           "load_els_scan", "load_paper_samples", "save_paper_samples", "network_samples", "referee_scores",
           "load_els_calibration", "paper_pearson"]

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

    def table(self, metric: str = "r2", digits: int = 3, labels: dict | None = None) -> str:
        """A Markdown table: one row per model, one column per timestep, the winner of each column in bold.
        ``labels``: ``{model: name shown}`` for the rows (models not in it keep their key)."""
        check_choice(metric, "metric", tuple(METRICS))
        winners = self.best(metric)
        labels = labels or {}
        rows = []
        for name, vals in self.metrics[metric].items():
            cells = [f"{v:.{digits}g}" if metric == "mse" else f"{v:.{digits}f}" for v in vals]
            rows.append([labels.get(name, name)] + [f"**{c}**" if w == name else c for c, w in zip(cells, winners)])
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
    x0: torch.Tensor | None = None,
    schedule: DDPMSchedule | None = None,
    timesteps: list[int] | None = None,
    protocol: str = "forward",
    seed: int = 0,
    num_steps: int = 10,
    spacing: str = "leading",
    *,
    x_T: torch.Tensor | None = None,
) -> Comparison:
    """Agreement of every ``models[name](x_t, t) -> x0_hat`` with ``reference(x_t, t)``, timestep by timestep.

    Protocol ``"forward"``: clean held-out images ``x0 [B, C, H, W]`` in [-1, 1], noised with
    ``eps ~ N(0, I)`` drawn once from ``seed``; ``timesteps`` is required.
    Protocol ``"trajectory"``: the start noise ``x_T [B, C, H, W]`` (keyword); the reference samples with
    ``ddim_sample(reference, x_T, schedule, num_steps, spacing, timesteps=timesteps)`` (clipped
    x0-estimates inside the step, as the paper) and the models are evaluated on its inputs ``xt[k]``.
    Returns a :class:`Comparison` (metrics ``[T]`` per model, predictions, wall times).
    """
    _check_comparison(models, schedule, protocol, x0, x_T)
    if protocol == "forward":
        ts, inputs = _forward_inputs(x0, schedule, timesteps, seed)
    else:
        traj = ddim_sample(reference, x_T, schedule, num_steps, spacing, timesteps=timesteps)
        ts, inputs = list(traj.timesteps), traj.xt
    refs, ref_seconds = _predictions(reference, inputs, ts)
    metrics = {m: {} for m in METRICS}
    seconds, predictions = {}, {}
    for name, den in models.items():
        preds, seconds[name] = _predictions(den, inputs, ts)
        for m, (fn, _) in METRICS.items():
            metrics[m][name] = np.array([fn(p, ref) for p, ref in zip(preds, refs)], dtype=np.float64)
        predictions[name] = torch.stack(preds).detach().float().cpu()
    return Comparison(
        protocol=protocol, timesteps=[int(t) for t in ts], metrics=metrics, seconds=seconds,
        reference_seconds=ref_seconds, inputs=inputs.detach().float().cpu(),
        reference=torch.stack(refs).detach().float().cpu(), predictions=predictions,
    )


def _check_comparison(models, schedule, protocol: str, x0, x_T) -> None:
    """``ValueError`` unless ``protocol`` has its one input (``x0`` for "forward", ``x_T`` for "trajectory")."""
    check_choice(protocol, "protocol", ("forward", "trajectory"))
    if protocol == "forward" and (x_T is not None or x0 is None):
        raise ValueError("protocol 'forward' compares on noised clean images: pass x0 [B, C, H, W] "
                         "(x_T is the start noise of protocol 'trajectory')")
    if protocol == "trajectory" and (x0 is not None or x_T is None):
        raise ValueError("protocol 'trajectory' starts from noise: pass x_T= [B, C, H, W] "
                         "(x0 is for protocol 'forward')")
    check_images(x0 if protocol == "forward" else x_T, "x0" if protocol == "forward" else "x_T")
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {name: denoiser}")
    if not isinstance(schedule, DDPMSchedule):
        raise ValueError(f"schedule must be a DDPMSchedule, got {type(schedule).__name__}")


def _forward_inputs(x0: torch.Tensor, schedule: DDPMSchedule, timesteps, seed: int):
    """Protocol "forward": ``(ts, x_t [T, B, C, H, W])``, one noise ``eps`` from ``seed`` shared by every t."""
    if not timesteps:
        raise ValueError("protocol 'forward' needs a non-empty list of timesteps")
    ts = [check_timestep(int(t), schedule.num_steps) for t in timesteps]
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(x0.shape, generator=g).to(x0.device, x0.dtype)
    return ts, torch.stack([schedule.add_noise(x0, t, eps) for t in ts])


def _predictions(den, inputs, ts) -> tuple[list, float]:
    """``([den(x, t) for each input], seconds summed over the calls)``."""
    preds, seconds = [], 0.0
    for x, t in zip(inputs, ts):
        out, s = _timed(den, x, t)
        seconds += s
        preds.append(out)
    return preds, seconds


def paper_noise(seeds, shape) -> torch.Tensor:
    """The initial noise ``x_T [S, C, H, W]`` of the paper's protocol: image s is ``randn(shape)`` from a
    generator seeded with ``seeds[s]``, so a seed names one noise whatever the other seeds (an int
    ``seeds`` means ``range(seeds)``)."""
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a positive count or a list of distinct ints, got {seeds!r}")
    if len(shape) != 3:
        raise ValueError(f"shape must be (C, H, W), got {tuple(shape)}")
    return torch.stack([torch.randn(tuple(shape), generator=torch.Generator().manual_seed(s)) for s in seeds])


def bootstrap_interval(values, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values [S]``: resample S values with replacement
    ``n_boot`` times, take the ``(1 -+ level) / 2`` quantiles of the resampled means."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"values must be a 1-D array of at least 2 numbers, got shape {v.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    means = v[np.random.default_rng(seed).integers(0, v.size, (n_boot, v.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def summarize(values, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> dict:
    """``{"mean", "median", "lo", "hi", "n"}`` of ``values [S]``: ``(lo, hi)`` the bootstrap interval of the mean."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = bootstrap_interval(v, level, n_boot, seed)
    return {"mean": float(v.mean()), "median": float(np.median(v)), "lo": lo, "hi": hi, "n": int(v.size)}


def summarize_two_way(values, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> dict:
    """``{"mean", "median", "lo", "hi", "n"}`` of a table ``values [B, P]`` of two crossed samples (held-out
    inputs ``b`` by output pixels ``p``): ``(lo, hi)`` is a two-way bootstrap interval of the grand mean, each
    draw resampling the B rows and the P columns independently with replacement, so that the interval
    covers a new choice of inputs *and* of pixels. ``n`` is ``B * P``."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or min(v.shape) < 2:
        raise ValueError(f"values must be a [B, P] table (inputs x pixels) with B, P >= 2, got shape {v.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if not np.isfinite(v).all():
        raise ValueError("values hold a non-finite number; a field of all zeros has no cosine or width")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, v.shape[0], (n_boot, v.shape[0]))
    cols = rng.integers(0, v.shape[1], (n_boot, v.shape[1]))
    # mean of v[rows_k][:, cols_k] = (row weights)^T v (column weights) / (B P), with counts as weights
    wr = np.stack([np.bincount(r, minlength=v.shape[0]) for r in rows]).astype(np.float64)  # [n_boot, B]
    wc = np.stack([np.bincount(c, minlength=v.shape[1]) for c in cols]).astype(np.float64)  # [n_boot, P]
    means = np.einsum("kb,bp,kp->k", wr, v, wc) / v.size
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"mean": float(v.mean()), "median": float(np.median(v)), "lo": float(lo), "hi": float(hi),
            "n": int(v.size)}


@dataclass
class PaperProtocol:
    """What :func:`paper_protocol` measured, over S seeds and the K DDIM steps ``timesteps``.

    ``final_r2[model]`` ``[S]``: r2 of the model's final sample to the reference's (the headline).
    ``x0_r2[model]`` ``[K, S]``: at step k, r2 of the model's clipped x0-estimate (on its own trajectory)
    to the reference's (on the reference's trajectory). ``reference_on_model_r2[model]`` ``[K, S]``: r2 of
    the model's clipped x0-estimate to ``clip(reference(x_t, t_k))`` at the model's own ``x_t``.
    ``samples[name]`` ``[S, C, H, W]`` (``"reference"`` included); ``seconds[name]``: sampling wall time;
    ``seeds[model]``: the seeds of its S columns (the same for every model of one run; a model of a run
    still in progress, read by :func:`load_paper_results`, may have fewer). ``pearson[model]`` ``[S]``: Pearson
    r of the final samples (filled by :func:`referee_scores`).
    All r2 use the unbiased variance of the reference image.
    """

    timesteps: list[int]
    seeds: dict[str, list[int]]
    final_r2: dict[str, np.ndarray]
    x0_r2: dict[str, np.ndarray]
    reference_on_model_r2: dict[str, np.ndarray]
    samples: dict[str, torch.Tensor]
    seconds: dict[str, float]
    pearson: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self, model: str, level: float = 0.95, n_boot: int = 10_000) -> dict:
        """:func:`summarize` of ``final_r2[model]``: mean, median and the bootstrap interval of the mean."""
        if model not in self.final_r2:
            raise ValueError(f"no model {model!r}; measured: {sorted(self.final_r2)}")
        return summarize(self.final_r2[model], level, n_boot)

    def difference(self, a: str, b: str, level: float = 0.95, n_boot: int = 10_000) -> dict:
        """:func:`summarize` of ``final_r2[a] - final_r2[b]`` over the seeds both have (paired: one seed,
        one noise, so the interval is that of the difference, not of two separate means)."""
        for m in (a, b):
            if m not in self.final_r2:
                raise ValueError(f"no model {m!r}; measured: {sorted(self.final_r2)}")
        common = sorted(set(self.seeds[a]) & set(self.seeds[b]))
        va = dict(zip(self.seeds[a], self.final_r2[a]))
        vb = dict(zip(self.seeds[b], self.final_r2[b]))
        return summarize([va[s] - vb[s] for s in common], level, n_boot)


def paper_protocol(
    models: dict,
    reference,
    schedule: DDPMSchedule,
    shape,
    seeds=128,
    num_steps: int = 10,
    spacing: str = "leading",
    batch_size: int = 64,
    progress: bool = False,
) -> PaperProtocol:
    """The locality paper's protocol: every ``models[name]`` and ``reference`` sample from the same
    ``paper_noise(seeds, shape)`` with ``ddim_sample(den, x_T, schedule, num_steps, spacing)`` (clipped
    x0 in the step, the last x0-estimate returned); per image, with the unbiased variance,
    ``r2 = 1 - ||x - y||^2 / (D Var(y))``, ``y`` the reference's. Seeds run in batches of ``batch_size``.
    Returns a :class:`PaperProtocol` (final-sample r2 ``[S]`` and the two per-step curves ``[K, S]``).
    """
    _check_paper_protocol(models, schedule, batch_size)
    x_T = paper_noise(seeds, shape)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    batches = [x_T[i : i + batch_size] for i in range(0, x_T.shape[0], batch_size)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(batches) * (1 + len(models)), desc="paper protocol", leave=False)

    def run(den, x):
        start = time.perf_counter()
        out = ddim_sample(den, x, schedule, num_steps, spacing)
        if bar is not None:
            bar.update(1)
        return out, time.perf_counter() - start

    refs, seconds = [], {"reference": 0.0}
    for x in batches:
        out, s = run(reference, x)
        refs.append(out)
        seconds["reference"] += s
    ts = refs[0].timesteps
    samples = {"reference": torch.cat([r.images for r in refs]).float().cpu()}
    final, x0_r2, on_model = {}, {}, {}
    for name, den in models.items():
        seconds[name], final[name], x0_r2[name], on_model[name], samples[name] = _paper_scores(
            den, reference, batches, refs, ts, run)
    if bar is not None:
        bar.close()
    return PaperProtocol(timesteps=list(ts), seeds={m: list(seed_list) for m in models}, final_r2=final, x0_r2=x0_r2,
                         reference_on_model_r2=on_model, samples=samples, seconds=seconds)


def _check_paper_protocol(models, schedule, batch_size) -> None:
    """``ValueError`` for arguments :func:`paper_protocol` cannot run with."""
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {name: denoiser}")
    if "reference" in models:
        raise ValueError("'reference' is the name of the reference's own samples; rename that model")
    if not isinstance(schedule, DDPMSchedule):
        raise ValueError(f"schedule must be a DDPMSchedule, got {type(schedule).__name__}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _paper_scores(den, reference, batches, refs, ts, run):
    """One model of :func:`paper_protocol`, batch by batch: ``run(den, x)`` samples from each batch of noise
    and its trajectory is scored against the reference's ``refs``. Returns ``(seconds, final r2 [S],
    x0 r2 [K, S], reference-on-model r2 [K, S], final samples [S, C, H, W])``."""
    seconds, fin, cur, onm, imgs = 0.0, [], [], [], []
    for x, ref in zip(batches, refs):
        out, s = run(den, x)
        seconds += s
        with torch.no_grad():
            ref_here = [reference(xt, t).clamp(-1, 1) for xt, t in zip(out.xt, ts)]
        fin.append(r2_per_image(out.images, ref.images, unbiased=True))
        cur.append(torch.stack([r2_per_image(a, b, unbiased=True) for a, b in zip(out.x0, ref.x0)]))
        onm.append(torch.stack([r2_per_image(a, b, unbiased=True) for a, b in zip(out.x0, ref_here)]))
        imgs.append(out.images.float().cpu())
    return (seconds, torch.cat(fin).numpy(), torch.cat(cur, dim=1).numpy(), torch.cat(onm, dim=1).numpy(),
            torch.cat(imgs))


RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _result_file(stem: str, dataset: str, suffix: str = ".json", root=None) -> Path:
    """``<root or RESULTS_DIR>/<stem>_<dataset><suffix>``: where the results files live."""
    return Path(root if root is not None else RESULTS_DIR) / f"{stem}_{dataset}{suffix}"


def load_paper_results(dataset: str) -> tuple[PaperProtocol, dict]:
    """The paper's protocol as ``benchmarks/paper_protocol.py`` ran it for ``dataset`` (the file
    ``locality_lib/results/paper_protocol_<dataset>.json`` shipped with the library).

    Returns ``(PaperProtocol, info)``; ``info``: the run's ``config`` (seeds, training-set sizes,
    candidate patch sizes), ``patch_sizes`` (``{model: {t: P}}``, its calibration) and ``seconds``.
    """
    path = _result_file("paper_protocol", dataset)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `python benchmarks/paper_protocol.py {dataset}` first")
    d = json.loads(path.read_text())
    m = d["models"]
    res = PaperProtocol(
        timesteps=list(d["timesteps"]), seeds={k: list(v["seeds"]) for k, v in m.items()},
        final_r2={k: np.asarray(v["final_r2"]) for k, v in m.items()},
        x0_r2={k: np.asarray(v["x0_r2"]).T for k, v in m.items()},
        reference_on_model_r2={k: np.asarray(v["reference_on_model_r2"]).T for k, v in m.items()},
        samples={}, seconds={k: v["seconds"] for k, v in m.items()},
    )
    info = {"config": d["config"], "seconds": res.seconds,
            "patch_sizes": {k: {int(t): p for t, p in v.items()} for k, v in d["patch_sizes"].items()}}
    return res, info


def load_paper_samples(dataset: str, root=None) -> dict[str, tuple[list[int], torch.Tensor]]:
    """The final samples behind ``load_paper_results(dataset)``: ``{name: (seeds [S], samples [S, C, H, W])}``
    for every model that ``benchmarks/paper_protocol.py`` ran, and ``"reference"`` (the UNet's), from
    ``locality_lib/results/paper_samples_<dataset>.npz`` (float32, as sampled); ``{}`` if there is no file."""
    path = _result_file("paper_samples", dataset, ".npz", root)
    if not path.exists():
        return {}
    with np.load(path) as z:
        return {k[: -len("_seeds")]: ([int(s) for s in z[k]], torch.from_numpy(z[k[: -len("_seeds")]]))
                for k in z.files if k.endswith("_seeds")}


def save_paper_samples(dataset: str, seeds, samples: dict, root=None) -> None:
    """Add (or replace) the final samples ``samples[name] [S, C, H, W]`` of seeds ``seeds`` for every ``name``
    in the samples file of :func:`load_paper_samples`, in one write (to a temporary file, then renamed:
    never half written)."""
    seeds = [int(s) for s in seeds]
    have = load_paper_samples(dataset, root)
    for name, x in samples.items():
        if x.ndim != 4 or x.shape[0] != len(seeds):
            raise ValueError(f"samples[{name!r}] must be [S, C, H, W] with S = len(seeds) = {len(seeds)}, "
                             f"got {tuple(x.shape)}")
        old_seeds, old = have.get(name, ([], x[:0].float().cpu()))
        keep = [i for i, s in enumerate(old_seeds) if s not in set(seeds)]
        have[name] = ([old_seeds[i] for i in keep] + seeds, torch.cat([old[keep], x.float().cpu()]))
    arrays = {}
    for k, (sd, x) in have.items():
        arrays[k], arrays[f"{k}_seeds"] = x.numpy().astype(np.float32), np.asarray(sd, dtype=np.int64)
    path = _result_file("paper_samples", dataset, ".npz", root)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def network_samples(den, seeds, shape, schedule: DDPMSchedule | None = None, num_steps: int = 10,
                    batch_size: int = 64, progress: bool = False) -> torch.Tensor:
    """A denoiser's final samples ``[S, C, H, W]`` (float32, cpu) from the protocol's initial noise
    ``paper_noise(seeds, shape)`` with ``num_steps``-step DDIM, in the order of ``seeds``."""
    schedule = schedule if schedule is not None else DDPMSchedule()
    seeds = [int(s) for s in seeds]
    x_T = paper_noise(seeds, shape)
    chunks = range(0, len(seeds), batch_size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"samples of {denoiser_label(den)}", leave=False)
    with torch.no_grad():
        return torch.cat([ddim_sample(den, x_T[i : i + batch_size], schedule, num_steps).images.float().cpu()
                          for i in chunks])


def referee_scores(dataset: str, referee, schedule: DDPMSchedule | None = None, batch_size: int = 64,
                   progress: bool = False, root=None, extra: dict | None = None) -> PaperProtocol:
    """The paper's headline measure with any referee: ``referee`` (a denoiser, e.g. the DiT) samples from
    the same initial noise ``paper_noise(seeds)`` with the protocol's 10-step DDIM (or ``referee`` is
    ``(seeds, samples [S, C, H, W])``, those samples already drawn by :func:`network_samples` for every
    seed of the stored sets), and every model's
    stored final sample (:func:`load_paper_samples`, plus ``extra = {name: (seeds, samples [S, C, H, W])}``,
    e.g. other networks' samples from :func:`network_samples`) is scored against it per image:
    ``r2 = 1 - ||x - y||^2 / (D Var(y))`` (``y`` the referee's sample, unbiased variance) in ``final_r2``
    and Pearson r in ``pearson`` (not-a-number where an image is constant).

    Returns a :class:`PaperProtocol` with ``final_r2``, ``pearson`` and ``samples`` (``"reference"`` = the
    referee's) for every model, including ``"unet"`` (the UNet referee's own stored samples); the per-step
    curves are empty (they need the models' trajectories). With the UNet as ``referee`` the ``final_r2``
    equal ``load_paper_results(dataset)``'s."""
    stored = load_paper_samples(dataset, root)
    if not stored:
        raise FileNotFoundError(f"{_result_file('paper_samples', dataset, '.npz', root)} not found: run "
                                f"`python benchmarks/paper_protocol.py {dataset}` first")
    stored = {("unet" if k == "reference" else k): v for k, v in stored.items()}
    for name, (sd, x) in (extra or {}).items():
        if name in stored:
            raise ValueError(f"extra sample set {name!r} has the name of a stored one; rename it")
        if x.ndim != 4 or x.shape[0] != len(sd):
            raise ValueError(f"extra[{name!r}] must be (seeds [S], samples [S, C, H, W]), got {len(sd)} seeds "
                             f"and shape {tuple(x.shape)}")
        stored[name] = ([int(s) for s in sd], x.float().cpu())
    num_steps = json.loads(_result_file("paper_protocol", dataset, root=root).read_text())["config"]["num_steps"]
    seeds = sorted(set().union(*(sd for sd, _ in stored.values())))
    shape = tuple(next(iter(stored.values()))[1].shape[1:])
    if isinstance(referee, tuple):
        ref_seeds, ref = [int(s) for s in referee[0]], referee[1].float().cpu()
        if ref.ndim != 4 or ref.shape[0] != len(ref_seeds) or tuple(ref.shape[1:]) != shape:
            raise ValueError(f"referee must be (seeds [S], samples [S, {', '.join(map(str, shape))}]), got "
                             f"{len(ref_seeds)} seeds and shape {tuple(ref.shape)}")
        missing = sorted(set(seeds) - set(ref_seeds))
        if missing:
            raise ValueError(f"the referee's samples lack {len(missing)} seeds of the stored sets (first: "
                             f"{missing[:5]}); draw them with network_samples(den, seeds, ...)")
    else:
        ref_seeds = seeds
        ref = network_samples(referee, seeds, shape, schedule, num_steps, batch_size, progress)
    row = {s: i for i, s in enumerate(ref_seeds)}
    final, pearson, seed_of, samples = {}, {}, {}, {"reference": ref}
    for name, (sd, x) in stored.items():
        y = ref[[row[s] for s in sd]]
        final[name] = r2_per_image(x, y, unbiased=True).numpy()
        pearson[name] = pearson_per_image(x, y, constant="undefined").numpy()
        seed_of[name], samples[name] = list(sd), x
    return PaperProtocol(timesteps=[], seeds=seed_of, final_r2=final, x0_r2={}, reference_on_model_r2={},
                         samples=samples, seconds={}, pearson=pearson)


def paper_pearson(dataset: str, root=None) -> dict[str, tuple[list[int], np.ndarray]]:
    """Pearson r of every stored final sample with the reference's sample of the same seed (the paper's protocol,
    ``paper_samples_<dataset>.npz``): ``{model: (seeds, r [S] float64)}`` over the seeds both have, in the
    model's order; not-a-number where a sample is a constant image (r undefined). The measure Kamb & Ganguli report
    (their code calls it "r2"), beside the paper's r2."""
    stored = load_paper_samples(dataset, root)
    if "reference" not in stored:
        return {}
    ref_seeds, ref = stored["reference"]
    where = {s: k for k, s in enumerate(ref_seeds)}
    out = {}
    for name, (seeds, samples) in stored.items():
        if name == "reference":
            continue
        keep = [k for k, s in enumerate(seeds) if s in where]
        if keep:
            r = pearson_per_image(samples[keep], ref[[where[seeds[k]] for k in keep]], constant="undefined")
            out[name] = ([seeds[k] for k in keep], r.numpy())
    return out


def load_els_calibration(dataset: str, referee: str | None = None) -> dict:
    """``benchmarks/calibrate_els.py``'s calibration of the ELS machine against ``referee`` (default: the dataset's
    UNet): ``{"best": {t: P}, "winners": {t: [P per sample]}, "median_cosine": {t: [per size]}, "mean_r2": ...,
    "sizes", "timesteps", "n_train", "seeds", "authors_mnist_unet": {t: P}, "seconds"}`` (timesteps as ints)."""
    name = "" if referee in (None, f"unet/{dataset}") else "_" + referee.replace("/", "_")
    path = _result_file("els_calibration", dataset + name)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `python benchmarks/calibrate_els.py {dataset}` first")
    d = json.loads(path.read_text())
    for key in ("best", "winners", "median_cosine", "mean_r2", "authors_mnist_unet"):
        d[key] = {int(t): v for t, v in d[key].items()}
    return d


def load_els_scan(dataset: str, machine: str = "els") -> dict[int, dict]:
    """``benchmarks/els_scan.py``'s run for ``dataset``: ``{N: {"seeds", "final_r2", "seconds", "patch_sizes"}}``,
    the paper's protocol for ELS machines on N training images (``locality_lib/results/<machine>_scan_<dataset>.json``;
    ``machine``: ``"els"``, the boundary-broken machine, or ``"els_padded"``)."""
    check_choice(machine, "machine", ("els", "els_padded"))
    path = _result_file(f"{machine}_scan", dataset)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `python benchmarks/els_scan.py {dataset}` first")
    return {int(n): v for n, v in json.loads(path.read_text()).items()}
