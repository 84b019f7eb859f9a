"""Train the book's UNet baselines on one GPU inside a fixed time budget (how the shipped checkpoints were made).

Trains every dataset at once, one process each on the same GPU (a 1 M-parameter UNet leaves the GPU
mostly idle; two processes keep it busier). First a short probe (both runs together, ``--probe-steps``
steps) measures seconds per step; the number of epochs is then chosen so that the cosine learning-rate
schedule ends inside ``--minutes``. ``--max-minutes`` (budget + 0.5) stops and saves a run that is slower
than the probe promised.

    python tools/train_gpu.py --minutes 7 --out-dir runs/gpu [--datasets mnist fashion_mnist]

``--epochs N`` skips the probe. Measured on an NVIDIA H200 (torch 2.11, batch 512, two runs at once):
the probe said 19 ms per step, the runs then took 43 ms per step, so the shipped checkpoints stopped
at the time cap (step 9,304 of a 173-epoch schedule) and were resumed with ``--epochs 100`` (see
the README); budget with the 43 ms.

Writes ``<out-dir>/<dataset>.pt`` (the slim checkpoint to copy to ``locality_lib/checkpoints/``),
``<out-dir>/<dataset>.log`` (the run's output and its mean loss per epoch) and the resumable state
``<state-dir>/<dataset>_state.pt`` (default: the out-dir).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch


def launch(dataset: str, args, out_dir: Path, tag: str, extra: list[str]):
    log = open(out_dir / f"{dataset}{tag}.log", "w")
    cmd = [sys.executable, "-u", "-m", "locality_lib.train", "--dataset", dataset, "--device", args.device,
           "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--warmup-steps", str(args.warmup_steps),
           "--dropout", "0.0", "--bf16", "--quiet", *extra]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log


def wait_all(procs):
    for p, log in procs:
        p.wait()
        log.close()
    for p, log in procs:
        if p.returncode != 0:
            print(Path(log.name).read_text()[-3000:], flush=True)
            raise SystemExit(f"training failed: {p.args}")


def probe(args, state_dir: Path, steps_per_epoch: int) -> int:
    """Run every dataset for ``--probe-steps`` steps at once; the epochs that fit in ``--minutes``."""
    t0 = time.time()
    probes = [launch(d, args, state_dir, "_probe", ["--epochs", "1", "--out", str(state_dir / f"{d}_probe.pt"),
                                                   "--stop-after-steps", str(args.probe_steps)]) for d in args.datasets]
    wait_all(probes)
    per_step = max(torch.load(state_dir / f"{d}_probe.pt", weights_only=True)["seconds"] for d in args.datasets)
    per_step /= args.probe_steps
    for d in args.datasets:
        (state_dir / f"{d}_probe.pt").unlink()  # 17 MB each, and nothing resumes them
    epochs = int(min(args.max_epochs, max(1, args.minutes * 60 / (per_step * steps_per_epoch))))
    print(f"probe: {per_step * 1e3:.1f} ms/step with {len(args.datasets)} runs in parallel "
          f"({time.time() - t0:.0f} s) -> {epochs} epochs of {steps_per_epoch} steps", flush=True)
    return epochs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    p.add_argument("--minutes", type=float, required=True, help="training time budget (all runs in parallel)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--state-dir", default=None, help="where the resumable states go (default: --out-dir)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=500)
    p.add_argument("--probe-steps", type=int, default=300)
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=None, help="train this many epochs (no probe)")
    args = p.parse_args(argv)
    out_dir = Path(args.out_dir)
    state_dir = Path(args.state_dir or out_dir)
    for folder in (out_dir, state_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if args.device.startswith("cuda"):
        print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, flush=True)

    t0 = time.time()
    steps_per_epoch = 60000 // args.batch_size
    epochs = args.epochs or probe(args, state_dir, steps_per_epoch)
    runs = [launch(d, args, out_dir, "", ["--epochs", str(epochs), "--out", str(state_dir / f"{d}_state.pt"),
                                          "--publish", str(out_dir / f"{d}.pt"),
                                          "--max-minutes", str(args.minutes + 0.5)]) for d in args.datasets]
    wait_all(runs)
    for d in args.datasets:
        meta = torch.load(out_dir / f"{d}.pt", weights_only=True)["meta"]
        losses = torch.tensor(torch.load(state_dir / f"{d}_state.pt", weights_only=True)["losses"])
        curve = [round(float(c.mean()), 5) for c in losses.split(steps_per_epoch)]
        with open(out_dir / f"{d}.log", "a") as log:
            print("mean loss per epoch:", curve, file=log)
        print(d, {k: meta[k] for k in ("epochs", "steps", "final_loss", "train_seconds")}, flush=True)
    print(f"total {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
