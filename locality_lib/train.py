"""Train the book's UNet baselines: epsilon prediction, ``L = E_{x0, t, eps} ||eps_theta(x_t, t) - eps||^2``
with ``t ~ U{0..999}`` and ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` (Ho et al. 2020).

Command line::

    python -m locality_lib.train --dataset mnist --epochs 8 --out runs/mnist_state.pt \\
        --publish locality_lib/checkpoints/mnist.pt [--resume] [--max-minutes M] [--threads K] [--device cuda]
        [--fit-minutes M] [--compile]

``--out`` is the resumable training state (model, EMA, optimizer, RNG states, epoch, batch, step,
per-step losses), written after every epoch and whenever training stops early (time limit,
Ctrl-C, SIGTERM). ``--publish`` receives the slim EMA checkpoint that
``UNetDenoiser.from_checkpoint`` reads, at the same moments. No augmentation (digits are not
flip-symmetric); Adam with linear warm-up then cosine decay to 10 %; EMA decay
``min(decay, (1 + k) / (10 + k))`` at step k; gradient norm clipped at 1. Same seed, same result:
each epoch's order comes from ``(seed, epoch)``, the noise from a saved generator.

``--fit-minutes M`` picks the number of epochs (at most ``--epochs``) so that the whole cosine schedule
ends within M minutes: it times steps ``warmup/4 .. warmup/2`` (inside the warm-up, whose learning rate
does not depend on the schedule's length) and fixes the schedule there; the count is printed and saved
as ``planned_epochs`` (resume such a run with ``--epochs <planned_epochs>``). ``--compile`` runs the
training forward pass through ``torch.compile`` (worth it on GPUs; falls back to eager if it fails).
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .data import load_dataset
from .schedule import DDPMSchedule
from .unet import UNet, UNetConfig, save_checkpoint

__all__ = ["train_unet"]

STATE_FORMAT = "locality-unet-train-v1"
_RUN_KEYS = ("dataset", "n_train", "batch_size", "lr", "warmup_steps", "ema_decay", "seed", "bf16")


def _lr_at(step: int, total: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` down to ``0.1 lr`` at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def _save_state(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_unet(
    dataset: str = "mnist",
    epochs: int = 8,
    out="runs/mnist_state.pt",
    publish=None,
    resume: bool = False,
    max_minutes: float | None = None,
    threads: int | None = None,
    config: UNetConfig | None = None,
    batch_size: int = 128,
    lr: float = 5e-4,
    warmup_steps: int = 200,
    ema_decay: float = 0.999,
    seed: int = 0,
    bf16: bool = False,
    n_train: int | None = None,
    stop_after_steps: int | None = None,
    progress: bool = True,
    device="cpu",
    fit_minutes: float | None = None,
    compile: bool = False,
) -> dict:
    """Train (or with ``resume=True`` continue) a UNet on ``dataset``'s training split; return the metadata.

    ``bf16=True`` runs the forward pass under bfloat16 autocast (about 1.8x faster on CPUs
    with AVX512-BF16; weights, optimizer and loss stay float32). ``threads`` sets torch's CPU threads
    while training. ``device`` ("cpu", "cuda", "mps", ...) holds the data, model and optimizer; the
    batch order and the noise still come from CPU generators, so a run's random draws do not depend
    on the device and a state saved on one device resumes on another. ``n_train=None`` uses the whole
    split (60,000), else a seeded subset.
    Stops early, saving ``out`` and ``publish``, after ``max_minutes`` of training in this call or once
    ``stop_after_steps`` optimizer steps in total are done; a later ``resume=True`` call continues
    exactly where it stopped (same weights as an uninterrupted run); with no file at ``out`` it starts
    afresh. The metadata's ``final_loss`` is the mean of the last 100 step losses.
    ``fit_minutes`` shortens the schedule to what fits in that much training time (see the module
    docstring; needs ``warmup_steps >= 8`` and a fresh run); ``compile=True`` compiles the forward pass.
    """
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if fit_minutes is not None:
        if not fit_minutes > 0 or warmup_steps < 8:
            raise ValueError(f"fit_minutes needs a positive budget and warmup_steps >= 8 (it times the warm-up), "
                             f"got fit_minutes={fit_minutes!r}, warmup_steps={warmup_steps!r}")
        if resume and Path(out).is_file():
            raise ValueError(f"{out} exists: resume a fitted run with epochs=<its planned_epochs> instead of fit_minutes")
    out = Path(out)
    dev = _device(device)
    run = dict(dataset=dataset, n_train=n_train, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
               ema_decay=ema_decay, seed=seed, bf16=bool(bf16))
    torch.manual_seed(seed)
    if resume and out.is_file():
        try:
            st = torch.load(out, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"could not read training state {out} ({type(err).__name__}: {err})") from None
        if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
            raise ValueError(f"{out} is not a training state written by locality_lib.train")
        diff = {k: (st["run"][k], run[k]) for k in _RUN_KEYS if st["run"][k] != run[k]}
        if diff:
            raise ValueError(f"cannot resume {out}: settings differ from the saved run (saved, now): {diff}")
        saved = UNetConfig(**st["config"])
        if config is not None and config != saved:
            raise ValueError(f"cannot resume {out}: it holds a UNet with {saved}, not {config}")
        config = saved
        net = UNet(config).to(dev)
        net.load_state_dict(st["model"])
        ema = {k: v.to(dev) for k, v in st["ema"].items()}
        opt = _adam(net, lr, dev)
        opt.load_state_dict(st["optimizer"])
        torch.set_rng_state(st["rng_torch"])
        noise_gen = torch.Generator().set_state(st["rng_noise"])
        epoch, batch, step, losses, seconds = st["epoch"], st["batch"], st["step"], st["losses"], st["seconds"]
    else:
        net = UNet(config).to(dev)
        config = net.config
        ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
        opt = _adam(net, lr, dev)
        noise_gen = torch.Generator().manual_seed(seed + 1)
        epoch, batch, step, losses, seconds = 0, 0, 0, [], 0.0
    schedule = DDPMSchedule()
    data = load_dataset(dataset, "train", n=n_train, seed=seed).to(dev)
    steps_per_epoch = data.shape[0] // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {batch_size} exceeds the {data.shape[0]} training images")
    total_steps = epochs * steps_per_epoch
    abar = schedule.alpha_bar.to(dev)
    live = net.state_dict()  # detached views of the parameters: the optimizer updates them in place
    ema_list, live_list = [ema[k] for k in live], [live[k] for k in live]
    pending = []  # step losses still on the device (read back in groups, not one sync per step)
    fit_steps = () if fit_minutes is None else (warmup_steps // 4, warmup_steps // 2)  # the timed stretch
    fit_clock = None
    forward = net
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolutions once
    if compile:
        import torch._dynamo as dynamo

        dynamo.config.suppress_errors = True  # a backend failure runs eagerly instead of stopping training
        forward = torch.compile(net)

    def flush():
        if pending:
            losses.extend(torch.stack(pending).float().cpu().tolist())
            pending.clear()

    def save():
        flush()
        meta = dict(run, n_train=data.shape[0], schedule=dict(beta_start=schedule.beta_start,
                    beta_end=schedule.beta_end, num_steps=schedule.num_steps),
                    epochs=round(epoch + batch / steps_per_epoch, 3), planned_epochs=epochs, steps=step,
                    num_parameters=net.num_parameters(), final_loss=_recent(losses),
                    train_seconds=round(seconds, 1), torch=str(torch.__version__),
                    saved=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
        _save_state(out, dict(format=STATE_FORMAT, run=run, config=asdict(config), model=_cpu(net.state_dict()),
                              ema=_cpu(ema), optimizer=_cpu(opt.state_dict()), rng_torch=torch.get_rng_state(),
                              rng_noise=noise_gen.get_state(), epoch=epoch, batch=batch, step=step,
                              losses=losses, seconds=seconds, meta=meta))
        if publish is not None:
            save_checkpoint(publish, net, ema, meta)
        return meta

    stop = {"signal": None}
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda s, f: stop.update(signal=signal.Signals(s).name))
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    started = time.time()
    bar = None
    try:
        net.train()
        while epoch < epochs:
            order = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(seed * 100003 + epoch)).to(dev)
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=steps_per_epoch, initial=batch, desc=f"{dataset} epoch {epoch + 1}/{epochs}")
            while batch < steps_per_epoch:
                t0 = time.time()
                x0 = data[order[batch * batch_size : (batch + 1) * batch_size]]
                t = torch.randint(0, schedule.num_steps, (x0.shape[0],), generator=noise_gen).to(dev)
                eps = torch.randn(x0.shape, generator=noise_gen).to(dev)
                ab = abar[t].view(-1, 1, 1, 1)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bool(bf16)):
                    pred = forward(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t)
                loss = (pred.float() - eps).pow(2).mean()
                for group in opt.param_groups:
                    group["lr"] = _lr_at(step, total_steps, lr, warmup_steps)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                decay = min(ema_decay, (1 + step) / (10 + step))
                with torch.no_grad():
                    torch._foreach_lerp_(ema_list, live_list, 1 - decay)
                pending.append(loss.detach())
                step += 1
                batch += 1
                if step in fit_steps:
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    now = time.time()
                    if step == fit_steps[0]:
                        fit_clock = now
                    else:  # fix the schedule: the epochs whose steps fit in the time left
                        per_step = (now - fit_clock) / (fit_steps[1] - fit_steps[0])
                        steps_left = (60 * fit_minutes - (now - started)) / per_step
                        epochs = max(epoch + 1, min(epochs, int((step + steps_left) // steps_per_epoch)))
                        total_steps = epochs * steps_per_epoch
                        print(f"{dataset}: {1e3 * per_step:.1f} ms/step -> {epochs} epochs "
                              f"fit in {fit_minutes:.2f} min", flush=True)
                if dev.type == "cpu" or len(pending) >= 50:
                    flush()
                    if bar is not None:
                        bar.set_postfix(loss=f"{_recent(losses):.4f}")
                seconds += time.time() - t0
                if bar is not None:
                    bar.update(1)
                timed_out = max_minutes is not None and time.time() - started > 60 * max_minutes
                if stop["signal"] or timed_out or (stop_after_steps is not None and step >= stop_after_steps):
                    meta = save()
                    why = stop["signal"] or ("time limit" if timed_out else "stop_after_steps")
                    print(f"stopped ({why}) at epoch {meta['epochs']}, step {step}; resume with --resume")
                    return meta
            if bar is not None:
                bar.close()
                bar = None
            epoch, batch = epoch + 1, 0
            save()
        return save()
    finally:
        if bar is not None:
            bar.close()
        for sig, h in handlers.items():
            signal.signal(sig, h)
        torch.set_num_threads(threads_before)
        net.eval()


def _device(device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA GPU; use device='cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} asked for, but MPS is not available here; use device='cpu'")
    return dev


def _adam(net, lr: float, dev: torch.device):
    """Adam; the fused kernel on CUDA (same update, fewer launches)."""
    return torch.optim.Adam(net.parameters(), lr=lr, fused=True if dev.type == "cuda" else None)


def _cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def _recent(losses: list, n: int = 100) -> float:
    """Mean of the last ``n`` step losses (nan before the first step)."""
    tail = losses[-n:]
    return round(sum(tail) / len(tail), 5) if tail else float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--out", required=True, help="training state (resumable), e.g. runs/mnist_state.pt")
    p.add_argument("--publish", default=None, help="slim EMA checkpoint, e.g. locality_lib/checkpoints/mnist.pt")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this much training time")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--base-channels", type=int, default=UNetConfig.base_channels)
    p.add_argument("--channel-mults", type=int, nargs="+", default=list(UNetConfig.channel_mults))
    p.add_argument("--num-res-blocks", type=int, default=UNetConfig.num_res_blocks)
    p.add_argument("--dropout", type=float, default=UNetConfig.dropout)
    p.add_argument("--prior-skip", action="store_true", help="eps = sqrt(1 - abar_t) x_t + network (UNetConfig)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps, ...")
    p.add_argument("--stop-after-steps", type=int, default=None, help="stop (and save) after this many steps in all")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--fit-minutes", type=float, default=None,
                   help="shorten the schedule (at most --epochs) to what fits in this many minutes")
    p.add_argument("--compile", action="store_true", help="torch.compile the forward pass (GPUs)")
    a = p.parse_args(argv)
    cfg = UNetConfig(base_channels=a.base_channels, channel_mults=tuple(a.channel_mults),
                     num_res_blocks=a.num_res_blocks, dropout=a.dropout, prior_skip=a.prior_skip)
    meta = train_unet(a.dataset, a.epochs, a.out, a.publish, a.resume, a.max_minutes, a.threads, cfg,
                      batch_size=a.batch_size, lr=a.lr, warmup_steps=a.warmup_steps, seed=a.seed, bf16=a.bf16,
                      stop_after_steps=a.stop_after_steps, progress=not a.quiet, device=a.device,
                      fit_minutes=a.fit_minutes, compile=a.compile)
    print({k: meta[k] for k in ("dataset", "epochs", "steps", "final_loss", "train_seconds", "num_parameters")
           if k in meta})


if __name__ == "__main__":
    main()
