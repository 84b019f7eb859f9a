"""Train the book's epsilon networks (UNet, DiT or CNN) with the loss of :func:`locality_lib.epsilon.epsilon_loss`:
``L = E_{x0, t, eps} ||eps_theta(x_t, t) - eps||^2``, ``t ~ U{0..999}``, ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.

Command line::

    python -m locality_lib.train --dataset mnist --epochs 8 --out runs/mnist_state.pt \\
        --publish locality_lib/checkpoints/mnist.pt [--arch unet|dit|cnn] [--transform none|w|shuffled]
        [--resume] [--max-minutes M] [--threads K] [--device cuda] [--fit-minutes M] [--compile]
        [--init-from CHECKPOINT] [--snapshot-every N --snapshot-dir DIR]

``--out`` is the resumable :class:`TrainState` (the checkpoint's entries -- architecture, config, EMA
weights, metadata -- plus the raw weights, optimizer, RNG states, epoch, batch, step and per-step losses),
written after every epoch and whenever training stops early (time limit, Ctrl-C, SIGTERM). ``--publish``
receives the slim EMA checkpoint (:func:`locality_lib.epsilon.save_checkpoint`) at the same moments;
``--snapshot-every N`` also publishes one every N steps into ``--snapshot-dir`` (``step000500.pt``, ...),
to see how the fields settle during training. ``--transform`` plants the W or shuffles the pixels of every
training image (:func:`locality_lib.data.make_transform`; its spec is saved in the metadata).
``--init-from`` starts from a published checkpoint's EMA weights instead of a fresh network; the metadata's
``total_steps`` and ``total_train_seconds`` then add the training behind that checkpoint.

No augmentation (digits are not flip-symmetric); Adam with linear warm-up then cosine decay to 10 %;
EMA decay ``min(decay, (1 + k) / (10 + k))`` at step k; gradient norm clipped at 1. Same seed, same
result: each epoch's order comes from ``(seed, epoch)``, the noise from a saved generator.

``--fit-minutes M`` picks the number of epochs (at most ``--epochs``) so that the whole cosine schedule
ends within M minutes: it times steps ``warmup/4 .. warmup/2`` (inside the warm-up, whose learning rate
does not depend on the schedule's length) and fixes the schedule there; the count is printed and saved
as ``planned_epochs`` (resume such a run with ``--epochs <planned_epochs>``). ``--compile`` runs the
training forward pass through ``torch.compile`` (worth it on GPUs; falls back to eager if it fails).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .data import load_dataset, make_transform
from .epsilon import atomic_save, build_net, checkpoint_dict, epsilon_loss, load_checkpoint, save_checkpoint
from .schedule import DDPMSchedule

__all__ = ["train", "train_unet", "TrainState"]

STATE_FORMAT = "locality-train-v2"
_OLD_STATE_FORMAT = "locality-unet-train-v1"  # UNet-only states: arch "unet", no transform, no init
_RUN_KEYS = ("arch", "dataset", "transform", "init_from", "steps", "n_train", "batch_size", "lr", "warmup_steps",
             "ema_decay", "seed", "bf16")
_RUN_DEFAULTS = {"arch": "unet", "transform": None, "init_from": None, "steps": None}


def lr_at(step: int, total: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` down to ``0.1 lr`` at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


@dataclass
class TrainState:
    """Everything a run needs to continue: network, EMA weights, optimizer, noise generator, counters, losses.

    ``save(path, meta)`` writes :func:`~locality_lib.epsilon.checkpoint_dict` (the published checkpoint's
    entries) plus the training entries; ``publish(path, meta)`` writes the checkpoint alone; ``load`` reads
    a state back (``ValueError`` naming the file if it cannot).
    """

    net: torch.nn.Module
    ema: dict
    opt: torch.optim.Optimizer
    noise_gen: torch.Generator
    run: dict
    epoch: int = 0
    batch: int = 0
    step: int = 0
    losses: list = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def fresh(cls, run: dict, config, device: torch.device) -> "TrainState":
        """A new network (``run["arch"]`` with ``config``, or the weights of ``run["init_from"]``)."""
        if run["init_from"] is not None:
            net, _ = load_checkpoint(run["init_from"], arch=run["arch"])
            if config is not None and config != net.config:
                raise ValueError(f"--init-from {run['init_from']} holds {net.config}, not the asked {config}")
        else:
            net = build_net(run["arch"], asdict(config) if config is not None else {}, where="train")
        net = net.to(device)
        ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return cls(net, ema, _adam(net, run["lr"], device), torch.Generator().manual_seed(run["seed"] + 1), run)

    @classmethod
    def load(cls, path: Path, run: dict, config, device: torch.device) -> "TrainState":
        """The state at ``path``; refuses one whose settings (``_RUN_KEYS``) or config differ from ``run``/``config``."""
        try:
            st = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"could not read training state {path} ({type(err).__name__}: {err})") from None
        if not isinstance(st, dict) or st.get("format") not in (STATE_FORMAT, _OLD_STATE_FORMAT):
            raise ValueError(f"{path} is not a training state written by locality_lib.train")
        saved = dict(_RUN_DEFAULTS, **st["run"])
        diff = {k: (saved[k], run[k]) for k in _RUN_KEYS if saved[k] != run[k]}
        if diff:
            raise ValueError(f"cannot resume {path}: settings differ from the saved run (saved, now): {diff}")
        net = build_net(saved["arch"], st["config"], st["model"], where=f"training state {path}")
        if config is not None and config != net.config:
            raise ValueError(f"cannot resume {path}: it holds a {saved['arch']} with {net.config}, not {config}")
        net = net.to(device)
        opt = _adam(net, run["lr"], device)
        opt.load_state_dict(st["optimizer"])
        torch.set_rng_state(st["rng_torch"])
        return cls(net, {k: v.to(device) for k, v in st["ema"].items()}, opt,
                   torch.Generator().set_state(st["rng_noise"]), run, st["epoch"], st["batch"], st["step"],
                   st["losses"], st["seconds"])

    def save(self, path, meta: dict) -> None:
        atomic_save(dict(checkpoint_dict(self.net, self.ema, meta), format=STATE_FORMAT, run=self.run,
                         model=_cpu(self.net.state_dict()), optimizer=_cpu(self.opt.state_dict()),
                         rng_torch=torch.get_rng_state(), rng_noise=self.noise_gen.get_state(), epoch=self.epoch,
                         batch=self.batch, step=self.step, losses=self.losses, seconds=self.seconds), path)

    def publish(self, path, meta: dict) -> None:
        save_checkpoint(path, self.net, self.ema, meta)


def train(arch: str = "unet", dataset: str = "mnist", epochs: int = 8, out="runs/mnist_state.pt", publish=None,
          resume: bool = False, max_minutes: float | None = None, threads: int | None = None, config=None,
          batch_size: int = 128, lr: float = 5e-4, warmup_steps: int = 200, ema_decay: float = 0.999, seed: int = 0,
          bf16: bool = False, n_train: int | None = None, stop_after_steps: int | None = None, progress: bool = True,
          device="cpu", fit_minutes: float | None = None, compile: bool = False, transform: dict | None = None,
          init_from=None, snapshot_every: int | None = None, snapshot_dir=None, steps: int | None = None) -> dict:
    """Train (or with ``resume=True`` continue) network ``arch`` on ``dataset``'s training split; return the metadata.

    ``config``: a ``UNetConfig`` / ``DiTConfig`` / ``CNNConfig`` (None: the architecture's default). ``transform``:
    a spec for :func:`~locality_lib.data.make_transform` applied to the training images (None: plain data).
    ``bf16=True`` runs the forward pass under bfloat16 autocast (about 1.8x faster on CPUs with
    AVX512-BF16; weights, optimizer and loss stay float32). ``threads`` sets torch's CPU threads while
    training. ``device`` ("cpu", "cuda", "mps", ...) holds the data, model and optimizer; the batch order
    and the noise still come from CPU generators, so a run's random draws do not depend on the device and
    a state saved on one device resumes on another. ``n_train=None`` uses the whole split (60,000), else a
    seeded subset. Stops early, saving ``out`` and ``publish``, after ``max_minutes`` of training in this
    call or once ``stop_after_steps`` optimizer steps in total are done; a later ``resume=True`` call
    continues exactly where it stopped (same weights as an uninterrupted run); with no file at ``out`` it
    starts afresh. The metadata's ``final_loss`` is the mean of the last 100 step losses. ``fit_minutes``
    shortens the schedule to what fits in that much training time (see the module docstring; needs
    ``warmup_steps >= 8`` and a fresh run); ``compile=True`` compiles the forward pass. ``steps``: train
    exactly this many optimizer steps, the cosine schedule ending there (instead of ``epochs`` whole epochs).
    """
    # Check the settings.
    _check_settings(epochs, batch_size, fit_minutes, warmup_steps, resume, out, steps, snapshot_every, snapshot_dir)
    make_transform(transform)  # fail early on a bad spec
    out, dev = Path(out), _device(device)
    run = dict(arch=arch, dataset=dataset, transform=transform, init_from=None if init_from is None else str(init_from),
               steps=steps, n_train=n_train, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, ema_decay=ema_decay,
               seed=seed, bf16=bool(bf16))
    # Start afresh or resume.
    torch.manual_seed(seed)
    st = TrainState.load(out, run, config, dev) if resume and out.is_file() else TrainState.fresh(run, config, dev)
    # Load the data; set up the schedule, EMA and the forward pass.
    trainer = _Trainer(st, run, dev, epochs=epochs, out=out, publish=publish, progress=progress,
                       fit_minutes=fit_minutes, compile=compile, snapshot_every=snapshot_every, snapshot_dir=snapshot_dir)
    # Train: steps, EMA, snapshots, checkpoints after every epoch and at every stop.
    with _interruptible(threads) as stop:
        return trainer.loop(stop, max_minutes, stop_after_steps)


def _check_settings(epochs, batch_size, fit_minutes, warmup_steps, resume, out, steps, snapshot_every, snapshot_dir):
    """``ValueError`` for settings :func:`train` cannot run with."""
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
    if steps is not None and not (isinstance(steps, int) and steps >= 1 and fit_minutes is None):
        raise ValueError(f"steps must be a positive int (and not combined with fit_minutes), got {steps!r}")
    if snapshot_every is not None and (snapshot_dir is None or snapshot_every < 1):
        raise ValueError("snapshot_every needs a positive step count and a snapshot_dir")


def _prior_training(init_from) -> tuple[float, int]:
    """``(seconds, steps)`` of the training behind the ``init_from`` checkpoint (zeros without one), for the totals."""
    if init_from is None:
        return 0.0, 0
    _, meta = load_checkpoint(init_from)
    return meta.get("total_train_seconds", meta.get("train_seconds", 0.0)), meta.get("total_steps", meta.get("steps", 0))


@contextlib.contextmanager
def _interruptible(threads: int | None):
    """While inside: Ctrl-C and SIGTERM set ``stop["signal"]`` (main thread only) instead of ending the process,
    and torch uses ``threads`` CPU threads; both are restored on the way out. Yields ``stop``."""
    stop = {"signal": None}
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda s, f: stop.update(signal=signal.Signals(s).name))
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield stop
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        torch.set_num_threads(threads_before)


class _Trainer:
    """One call of :func:`train`: the state ``st``, the data and schedule, and the loop's bookkeeping."""

    def __init__(self, st: TrainState, run: dict, dev: torch.device, *, epochs, out, publish, progress,
                 fit_minutes, compile, snapshot_every, snapshot_dir):
        self.st, self.run, self.dev, self.out, self.publish, self.progress = st, run, dev, out, publish, progress
        self.fit_minutes, self.snapshot_every, self.snapshot_dir = fit_minutes, snapshot_every, snapshot_dir
        self.prior_seconds, self.prior_steps = _prior_training(run["init_from"])
        self.schedule = DDPMSchedule()
        images = load_dataset(run["dataset"], "train", n=run["n_train"], seed=run["seed"])
        self.data = make_transform(run["transform"])(images).to(dev)
        self.steps_per_epoch = self.data.shape[0] // run["batch_size"]
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size {run['batch_size']} exceeds the {self.data.shape[0]} training images")
        if run["steps"] is not None:
            epochs = math.ceil(run["steps"] / self.steps_per_epoch)
        self.epochs = epochs
        self.total_steps = epochs * self.steps_per_epoch if run["steps"] is None else run["steps"]
        self.abar = self.schedule.alpha_bar.to(dev)
        live = st.net.state_dict()  # detached views of the parameters: the optimizer updates them in place
        self.ema_list, self.live_list = [st.ema[k] for k in live], [live[k] for k in live]
        self.pending = []  # step losses still on the device (read back in groups, not one sync per step)
        warmup = run["warmup_steps"]
        self.fit_steps = () if fit_minutes is None else (warmup // 4, warmup // 2)  # the timed stretch
        self.fit_clock = None
        self.forward = _forward_pass(st.net, dev, compile)
        self.bar = None
        transform = run["transform"]
        self.label = f"{run['arch']} {run['dataset']}" + (f" ({transform['name']})" if transform else "")

    # -- one step ---------------------------------------------------------------------------------------------
    def step(self, x0: torch.Tensor) -> None:
        """One optimizer step on the batch ``x0 [B, C, H, W]``: draw ``t`` and ``eps``, the loss, clipped Adam, EMA."""
        st, run, dev = self.st, self.run, self.dev
        t = torch.randint(0, self.schedule.num_steps, (x0.shape[0],), generator=st.noise_gen).to(dev)
        eps = torch.randn(x0.shape, generator=st.noise_gen).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=run["bf16"]):
            loss = epsilon_loss(self.forward, x0, t, eps, self.abar)
        for group in st.opt.param_groups:
            group["lr"] = lr_at(st.step, self.total_steps, run["lr"], run["warmup_steps"])
        st.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(st.net.parameters(), 1.0)
        st.opt.step()
        self.update_ema()
        self.pending.append(loss.detach())

    def update_ema(self) -> None:
        """``ema <- decay ema + (1 - decay) weights`` with ``decay = min(ema_decay, (1 + k) / (10 + k))`` at step k."""
        decay = min(self.run["ema_decay"], (1 + self.st.step) / (10 + self.st.step))
        with torch.no_grad():
            torch._foreach_lerp_(self.ema_list, self.live_list, 1 - decay)

    # -- checkpoints and the log ------------------------------------------------------------------------------
    def flush(self) -> None:
        """Move the step losses still on the device into ``st.losses``."""
        if self.pending:
            self.st.losses.extend(torch.stack(self.pending).float().cpu().tolist())
            self.pending.clear()

    def metadata(self) -> dict:
        """The run's settings and where it stands: saved with every state and checkpoint, returned by :func:`train`."""
        st, run, schedule = self.st, self.run, self.schedule
        return dict(run, n_train=self.data.shape[0], schedule=dict(beta_start=schedule.beta_start,
                    beta_end=schedule.beta_end, num_steps=schedule.num_steps),
                    epochs=round(st.epoch + st.batch / self.steps_per_epoch, 3), planned_epochs=self.epochs,
                    steps=st.step, num_parameters=st.net.num_parameters(), final_loss=_recent(st.losses),
                    train_seconds=round(st.seconds, 1), total_train_seconds=round(self.prior_seconds + st.seconds, 1),
                    total_steps=self.prior_steps + st.step, torch=str(torch.__version__),
                    saved=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))

    def save(self) -> dict:
        """Write the training state to ``out`` and the EMA checkpoint to ``publish``; return the metadata."""
        self.flush()
        meta = self.metadata()
        self.st.save(self.out, meta)
        if self.publish is not None:
            self.st.publish(self.publish, meta)
        return meta

    def snapshot(self) -> None:
        """Publish the EMA checkpoint of this step into ``snapshot_dir`` (``step000500.pt``, ...)."""
        self.flush()
        self.st.publish(Path(self.snapshot_dir) / f"step{self.st.step:06d}.pt", self.metadata())

    # -- the loop ---------------------------------------------------------------------------------------------
    def loop(self, stop: dict, max_minutes: float | None, stop_after_steps: int | None) -> dict:
        """Epochs of steps until the schedule ends or a stop (signal, time, step count); saves after every epoch."""
        st, run = self.st, self.run
        started = time.time()
        try:
            st.net.train()
            if st.step >= self.total_steps:  # a finished run of `steps` steps: nothing left to do
                return self.save()
            while st.epoch < self.epochs:
                gen = torch.Generator().manual_seed(run["seed"] * 100003 + st.epoch)
                order = torch.randperm(self.data.shape[0], generator=gen).to(self.dev)
                self._open_bar()
                while st.batch < self.steps_per_epoch:
                    self._advance(order, started)
                    if self.snapshot_every is not None and st.step % self.snapshot_every == 0:
                        self.snapshot()
                    if st.step >= self.total_steps:  # the end of a run of `steps` steps (mid-epoch)
                        return self.save()
                    meta = self._stop_early(stop, started, max_minutes, stop_after_steps)
                    if meta is not None:
                        return meta
                self._close_bar()
                st.epoch, st.batch = st.epoch + 1, 0
                self.save()
            return self.save()
        finally:
            self._close_bar()
            st.net.eval()

    def _advance(self, order: torch.Tensor, started: float) -> None:
        """The next batch of ``order``: one step, the counters, the schedule fit, the loss log and the clock."""
        st, bs = self.st, self.run["batch_size"]
        t0 = time.time()
        self.step(self.data[order[st.batch * bs : (st.batch + 1) * bs]])
        st.step += 1
        st.batch += 1
        if st.step in self.fit_steps:
            self._fit_schedule(started)
        if self.dev.type == "cpu" or len(self.pending) >= 50:
            self.flush()
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{_recent(st.losses):.4f}")
        st.seconds += time.time() - t0
        if self.bar is not None:
            self.bar.update(1)

    def _fit_schedule(self, started: float) -> None:
        """``fit_minutes``: start the clock at the first timed step; at the second, fix the epochs that fit."""
        st = self.st
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
        now = time.time()
        if st.step == self.fit_steps[0]:
            self.fit_clock = now
            return
        per_step = (now - self.fit_clock) / (self.fit_steps[1] - self.fit_steps[0])
        steps_left = (60 * self.fit_minutes - (now - started)) / per_step
        fitted = int((st.step + steps_left) // self.steps_per_epoch)
        self.epochs = max(st.epoch + 1, min(self.epochs, fitted))
        self.total_steps = self.epochs * self.steps_per_epoch
        print(f"{self.label}: {1e3 * per_step:.1f} ms/step -> {self.epochs} epochs "
              f"fit in {self.fit_minutes:.2f} min", flush=True)

    def _stop_early(self, stop: dict, started: float, max_minutes, stop_after_steps) -> dict | None:
        """Save and return the metadata if a signal came, time ran out or ``stop_after_steps`` are done; else None."""
        timed_out = max_minutes is not None and time.time() - started > 60 * max_minutes
        if not (stop["signal"] or timed_out or (stop_after_steps is not None and self.st.step >= stop_after_steps)):
            return None
        meta = self.save()
        why = stop["signal"] or ("time limit" if timed_out else "stop_after_steps")
        print(f"stopped ({why}) at epoch {meta['epochs']}, step {self.st.step}; resume with --resume")
        return meta

    def _open_bar(self) -> None:
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.steps_per_epoch, initial=self.st.batch,
                            desc=f"{self.label} epoch {self.st.epoch + 1}/{self.epochs}")

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _forward_pass(net, dev: torch.device, compile: bool):
    """The network as the loss calls it: ``torch.compile(net)`` if asked (eager if compiling fails), else ``net``."""
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolutions once
    if not compile:
        return net
    import torch._dynamo as dynamo

    dynamo.config.suppress_errors = True  # a backend failure runs eagerly instead of stopping training
    return torch.compile(net)


def train_unet(dataset: str = "mnist", epochs: int = 8, out="runs/mnist_state.pt", publish=None, resume: bool = False,
               max_minutes: float | None = None, threads: int | None = None, config=None, **options) -> dict:
    """:func:`train` with ``arch="unet"`` (the original signature, kept for scripts and tests)."""
    return train("unet", dataset, epochs, out, publish, resume, max_minutes, threads, config, **options)


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


_TRANSFORM_SPECS = {"none": None, "w": {"name": "w", "amplitude": 2.0, "seed": 0}, "shuffled": {"name": "shuffled", "seed": 0}}


def main(argv=None):
    from .cnn import CNNConfig
    from .dit import DiTConfig
    from .unet import UNetConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="unet", choices=["unet", "dit", "cnn"])
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    p.add_argument("--transform", default="none", choices=list(_TRANSFORM_SPECS),
                   help="w: plant the W (amplitude U(0, 2), seed 0); shuffled: fixed pixel permutation (seed 0)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="train this many steps (overrides --epochs)")
    p.add_argument("--out", required=True, help="training state (resumable), e.g. runs/mnist_state.pt")
    p.add_argument("--publish", default=None, help="slim EMA checkpoint, e.g. locality_lib/checkpoints/mnist.pt")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this much training time")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--init-from", default=None, help="start from this published checkpoint's EMA weights")
    p.add_argument("--snapshot-every", type=int, default=None, help="also publish a checkpoint every N steps")
    p.add_argument("--snapshot-dir", default=None, help="folder for the --snapshot-every checkpoints")
    p.add_argument("--base-channels", type=int, default=UNetConfig.base_channels)
    p.add_argument("--channel-mults", type=int, nargs="+", default=list(UNetConfig.channel_mults))
    p.add_argument("--num-res-blocks", type=int, default=UNetConfig.num_res_blocks)
    p.add_argument("--dropout", type=float, default=UNetConfig.dropout)
    p.add_argument("--prior-skip", action="store_true", help="eps = sqrt(1 - abar_t) x_t + network (UNetConfig)")
    p.add_argument("--patch-size", type=int, default=DiTConfig.patch_size, help="DiT patch size")
    p.add_argument("--width", type=int, default=DiTConfig.width, help="DiT token width")
    p.add_argument("--depth", type=int, default=DiTConfig.depth, help="DiT blocks")
    p.add_argument("--heads", type=int, default=DiTConfig.heads, help="DiT attention heads")
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
    if a.arch == "unet":
        cfg = UNetConfig(base_channels=a.base_channels, channel_mults=tuple(a.channel_mults),
                         num_res_blocks=a.num_res_blocks, dropout=a.dropout, prior_skip=a.prior_skip)
    elif a.arch == "cnn":
        cfg = CNNConfig(base_channels=a.base_channels, channel_mults=tuple(a.channel_mults), num_res_blocks=a.num_res_blocks)
    else:
        cfg = DiTConfig(patch_size=a.patch_size, width=a.width, depth=a.depth, heads=a.heads)
    meta = train(a.arch, a.dataset, a.epochs, a.out, a.publish, a.resume, a.max_minutes, a.threads,
                 None if a.init_from else cfg, batch_size=a.batch_size, lr=a.lr, warmup_steps=a.warmup_steps,
                 seed=a.seed, bf16=a.bf16, stop_after_steps=a.stop_after_steps, progress=not a.quiet,
                 device=a.device, fit_minutes=a.fit_minutes, compile=a.compile,
                 transform=_TRANSFORM_SPECS[a.transform], init_from=a.init_from,
                 snapshot_every=a.snapshot_every, snapshot_dir=a.snapshot_dir, steps=a.steps)
    print({k: meta[k] for k in ("arch", "dataset", "transform", "epochs", "steps", "final_loss", "train_seconds",
                                "num_parameters") if k in meta})


if __name__ == "__main__":
    main()
