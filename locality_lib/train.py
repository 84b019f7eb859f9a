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


def train(
    arch: str = "unet",
    dataset: str = "mnist",
    epochs: int = 8,
    out="runs/mnist_state.pt",
    publish=None,
    resume: bool = False,
    max_minutes: float | None = None,
    threads: int | None = None,
    config=None,
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
    transform: dict | None = None,
    init_from=None,
    snapshot_every: int | None = None,
    snapshot_dir=None,
    steps: int | None = None,
) -> dict:
    """Train (or with ``resume=True`` continue) network ``arch`` on ``dataset``'s training split; return the metadata.

    ``config``: a ``UNetConfig`` / ``DiTConfig`` (None: the architecture's default). ``transform``: a spec
    for :func:`~locality_lib.data.make_transform` applied to the training images (None: plain data).
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
    # -- settings ---------------------------------------------------------------------------------------
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
    make_transform(transform)  # fail early on a bad spec
    out = Path(out)
    dev = _device(device)
    run = dict(arch=arch, dataset=dataset, transform=transform, init_from=None if init_from is None else str(init_from),
               steps=steps, n_train=n_train, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, ema_decay=ema_decay,
               seed=seed, bf16=bool(bf16))

    # -- state: fresh or resumed --------------------------------------------------------------------------
    torch.manual_seed(seed)
    if resume and out.is_file():
        st = TrainState.load(out, run, config, dev)
    else:
        st = TrainState.fresh(run, config, dev)

    prior_seconds, prior_steps = 0.0, 0  # the training behind the init_from checkpoint, for the totals
    if init_from is not None:
        _, init_meta = load_checkpoint(init_from)
        prior_seconds = init_meta.get("total_train_seconds", init_meta.get("train_seconds", 0.0))
        prior_steps = init_meta.get("total_steps", init_meta.get("steps", 0))

    # -- data -----------------------------------------------------------------------------------------------
    schedule = DDPMSchedule()
    data = make_transform(transform)(load_dataset(dataset, "train", n=n_train, seed=seed)).to(dev)
    steps_per_epoch = data.shape[0] // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {batch_size} exceeds the {data.shape[0]} training images")
    if steps is not None:
        epochs = math.ceil(steps / steps_per_epoch)
    total_steps = epochs * steps_per_epoch if steps is None else steps
    abar = schedule.alpha_bar.to(dev)

    # -- step machinery ---------------------------------------------------------------------------------------
    net = st.net
    live = net.state_dict()  # detached views of the parameters: the optimizer updates them in place
    ema_list, live_list = [st.ema[k] for k in live], [live[k] for k in live]
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
            st.losses.extend(torch.stack(pending).float().cpu().tolist())
            pending.clear()

    def metadata() -> dict:
        return dict(run, n_train=data.shape[0], schedule=dict(beta_start=schedule.beta_start,
                    beta_end=schedule.beta_end, num_steps=schedule.num_steps),
                    epochs=round(st.epoch + st.batch / steps_per_epoch, 3), planned_epochs=epochs, steps=st.step,
                    num_parameters=net.num_parameters(), final_loss=_recent(st.losses), train_seconds=round(st.seconds, 1),
                    total_train_seconds=round(prior_seconds + st.seconds, 1), total_steps=prior_steps + st.step,
                    torch=str(torch.__version__),
                    saved=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))

    def save():
        flush()
        meta = metadata()
        st.save(out, meta)
        if publish is not None:
            st.publish(publish, meta)
        return meta

    def one_step(x0):
        t = torch.randint(0, schedule.num_steps, (x0.shape[0],), generator=st.noise_gen).to(dev)
        eps = torch.randn(x0.shape, generator=st.noise_gen).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bool(bf16)):
            loss = epsilon_loss(forward, x0, t, eps, abar)
        for group in st.opt.param_groups:
            group["lr"] = lr_at(st.step, total_steps, lr, warmup_steps)
        st.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        st.opt.step()
        decay = min(ema_decay, (1 + st.step) / (10 + st.step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_list, live_list, 1 - decay)
        pending.append(loss.detach())

    # -- the loop -------------------------------------------------------------------------------------------
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
    label = f"{arch} {dataset}" + (f" ({transform['name']})" if transform else "")
    try:
        net.train()
        if st.step >= total_steps:  # a finished run of `steps` steps: nothing left to do
            return save()
        while st.epoch < epochs:
            order = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(seed * 100003 + st.epoch))
            order = order.to(dev)
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=steps_per_epoch, initial=st.batch, desc=f"{label} epoch {st.epoch + 1}/{epochs}")
            while st.batch < steps_per_epoch:
                t0 = time.time()
                one_step(data[order[st.batch * batch_size : (st.batch + 1) * batch_size]])
                st.step += 1
                st.batch += 1
                # -- schedule fitting (fit_minutes): time a stretch of the warm-up, then fix the epochs --
                if st.step in fit_steps:
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    now = time.time()
                    if st.step == fit_steps[0]:
                        fit_clock = now
                    else:
                        per_step = (now - fit_clock) / (fit_steps[1] - fit_steps[0])
                        steps_left = (60 * fit_minutes - (now - started)) / per_step
                        epochs = max(st.epoch + 1, min(epochs, int((st.step + steps_left) // steps_per_epoch)))
                        total_steps = epochs * steps_per_epoch
                        print(f"{label}: {1e3 * per_step:.1f} ms/step -> {epochs} epochs "
                              f"fit in {fit_minutes:.2f} min", flush=True)
                if dev.type == "cpu" or len(pending) >= 50:
                    flush()
                    if bar is not None:
                        bar.set_postfix(loss=f"{_recent(st.losses):.4f}")
                st.seconds += time.time() - t0
                if bar is not None:
                    bar.update(1)
                # -- snapshots and early stops ----------------------------------------------------------
                if snapshot_every is not None and st.step % snapshot_every == 0:
                    flush()
                    st.publish(Path(snapshot_dir) / f"step{st.step:06d}.pt", metadata())
                if st.step >= total_steps:  # the end of a run of `steps` steps (mid-epoch)
                    return save()
                timed_out = max_minutes is not None and time.time() - started > 60 * max_minutes
                if stop["signal"] or timed_out or (stop_after_steps is not None and st.step >= stop_after_steps):
                    meta = save()
                    why = stop["signal"] or ("time limit" if timed_out else "stop_after_steps")
                    print(f"stopped ({why}) at epoch {meta['epochs']}, step {st.step}; resume with --resume")
                    return meta
            if bar is not None:
                bar.close()
                bar = None
            st.epoch, st.batch = st.epoch + 1, 0
            save()
        return save()
    finally:
        if bar is not None:
            bar.close()
        for sig, h in handlers.items():
            signal.signal(sig, h)
        torch.set_num_threads(threads_before)
        net.eval()


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
