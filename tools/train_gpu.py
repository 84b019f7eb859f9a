"""Train the book's UNet baselines on one GPU inside a fixed time budget.

Trains the datasets one after another, each in its own process with ``--fit-minutes`` (its share of
the budget): the run times a stretch of its warm-up and shortens its cosine schedule to what fits, so
the learning rate has decayed when the time is up. One run at a time gets the whole GPU (two runs at
once took 43 ms per step each), and its timing is not disturbed by the other run's start-up.
``--max-minutes`` (share + 0.5) stops and saves a run that overruns anyway.

    python tools/train_gpu.py --minutes 8 --out-dir runs/gpu [--datasets mnist fashion_mnist]
        [--base-channels 48] [--prior-skip] [--compile] [--state-dir /tmp/states]

Measured on an NVIDIA H200 (torch 2.11, batch 512, bf16), one run at a time: base 32, eager, 25-35 ms
per step; base 48 (2.4 M parameters) with ``--compile``, 35-37 ms per step after about a minute of
compiling. The fitted runs ended within 10 s of their share.

``--epochs N`` fixes the schedule instead (no fitting); each run then stops and saves after its share,
so a schedule longer than one session continues in the next one. For a remote GPU whose results come
back in files of limited size: ``--split-mb 15`` also writes each state as
``<out-dir>/<dataset>_state.pt.partNNN`` pieces, and ``--resume-from DIR`` (a folder holding a state
or such pieces) joins them and continues::

    python tools/train_gpu.py --epochs 200 --prior-skip --minutes 9 --out-dir $OUT --split-mb 15
    python tools/train_gpu.py --epochs 200 --prior-skip --minutes 9 --out-dir $OUT --split-mb 15 --resume-from runs/prev

Writes ``<out-dir>/<dataset>.pt`` (the slim checkpoint to copy to ``locality_lib/checkpoints/``),
``<out-dir>/<dataset>.log`` (the run's output and its mean loss per epoch) and the resumable state
``<state-dir>/<dataset>_state.pt`` (default: the out-dir; a state is 2-4x the checkpoint, model + EMA
+ Adam moments).
The shipped checkpoints were made by an earlier version that ran both datasets at once (README).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch


def split_file(path: Path, out_dir: Path, mb: float) -> list[Path]:
    """Copy ``path`` into ``out_dir/<name>.part000, part001, ...`` of at most ``mb`` MB each."""
    data, size, parts = path.read_bytes(), int(mb * 1e6), []
    for i in range(0, len(data), size):
        parts.append(out_dir / f"{path.name}.part{i // size:03d}")
        parts[-1].write_bytes(data[i : i + size])
    return parts


def join_state(src: Path, dest: Path) -> bool:
    """Put the state ``src/<dest.name>`` (whole, or as ``.partNNN`` pieces) at ``dest``; False if there is none."""
    whole, parts = src / dest.name, sorted(src.glob(dest.name + ".part[0-9][0-9][0-9]"))
    if whole.is_file():
        data = whole.read_bytes()
    elif parts:
        data = b"".join(part.read_bytes() for part in parts)
    else:
        return False
    dest.write_bytes(data)
    return True


def train(dataset: str, args, out_dir: Path, state_dir: Path, minutes: float) -> None:
    state = state_dir / f"{dataset}_state.pt"
    resume = []
    if args.resume_from:
        if not join_state(Path(args.resume_from), state):
            raise SystemExit(f"--resume-from {args.resume_from}: no {state.name} or {state.name}.partNNN pieces there")
        resume = ["--resume"]
    cmd = [sys.executable, "-u", "-m", "locality_lib.train", "--dataset", dataset, "--device", args.device,
           "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--warmup-steps", str(args.warmup_steps),
           "--dropout", "0.0", "--bf16", "--quiet",
           "--out", str(state), "--publish", str(out_dir / f"{dataset}.pt"), *resume]
    if args.epochs:  # a fixed schedule: stop at the share, resumable
        cmd += ["--epochs", str(args.epochs), "--max-minutes", str(minutes)]
    else:
        cmd += ["--epochs", "1000", "--fit-minutes", str(minutes), "--max-minutes", str(minutes + 0.5)]
    cmd += ["--base-channels", str(args.base_channels)] if args.base_channels else []
    cmd += ["--compile"] if args.compile else []
    cmd += ["--prior-skip"] if args.prior_skip else []
    log_path = out_dir / f"{dataset}.log"
    with open(log_path, "w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        print(log_path.read_text()[-3000:], flush=True)
        raise SystemExit(f"training failed: {' '.join(cmd)}")
    if args.split_mb:
        split_file(state, out_dir, args.split_mb)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    p.add_argument("--minutes", type=float, required=True, help="training time for all datasets together")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--state-dir", default=None, help="where the resumable states go (default: --out-dir)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=500)
    p.add_argument("--base-channels", type=int, default=None, help="default: UNetConfig's (the shipped UNets)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward pass")
    p.add_argument("--prior-skip", action="store_true", help="UNetConfig.prior_skip")
    p.add_argument("--epochs", type=int, default=None, help="train this many epochs (no fitting to --minutes)")
    p.add_argument("--resume-from", default=None, help="folder with <dataset>_state.pt or its .partNNN pieces")
    p.add_argument("--split-mb", type=float, default=None, help="also write the states to --out-dir in pieces")
    args = p.parse_args(argv)
    if args.resume_from and not args.epochs:
        raise SystemExit("--resume-from needs --epochs: the schedule of the run it continues (its planned_epochs)")
    out_dir = Path(args.out_dir)
    state_dir = Path(args.state_dir or out_dir)
    for folder in (out_dir, state_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if args.device.startswith("cuda"):
        print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, flush=True)

    t0 = time.time()
    steps_per_epoch = 60000 // args.batch_size
    for i, d in enumerate(args.datasets):
        # each run gets an equal share of what is left, so a slow start-up of the first is not charged to the last
        share = (args.minutes - (time.time() - t0) / 60) / (len(args.datasets) - i)
        if share <= 0.1:
            raise SystemExit(f"no training time left for {d}: the runs before it used the {args.minutes} minutes")
        train(d, args, out_dir, state_dir, share)
        meta = torch.load(out_dir / f"{d}.pt", weights_only=True)["meta"]
        losses = torch.tensor(torch.load(state_dir / f"{d}_state.pt", weights_only=True)["losses"])
        curve = [round(float(c.mean()), 5) for c in losses.split(steps_per_epoch)]
        with open(out_dir / f"{d}.log", "a") as log:
            print("mean loss per epoch:", curve, file=log)
        print(d, {k: meta[k] for k in ("epochs", "planned_epochs", "steps", "final_loss", "train_seconds")},
              f"{time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
