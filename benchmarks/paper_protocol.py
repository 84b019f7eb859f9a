"""The paper's headline measure on MNIST / Fashion-MNIST, for the models too slow for chapter 7 to run.

Every model samples with 10-step DDIM from the same initial noise per seed as the book's UNet
(``locality_lib.compare.paper_protocol``); the per-seed final-sample r2 and both per-step curves are
appended to ``locality_lib/results/paper_protocol_<dataset>.json`` after every batch of seeds, so an
interrupted run resumes where it stopped (the chapter reads the file and states how many seeds each
model has). The final samples go to ``paper_samples_<dataset>.npz`` beside it (the UNet's as
``"reference"``), so that another referee can score them without re-running the models
(``locality_lib.compare.referee_scores``); seeds already in the JSON but missing from the samples file are
sampled again and must reproduce their stored r2 (to 1e-4), or the script stops. LS and the padded ELS machine are calibrated first (``calibrate_patch_sizes`` with their own class, by r2,
on calibration noise of seeds 10000+, disjoint from the test seeds 0..S-1); ELS takes the sizes of
``benchmarks/calibrate_els.py`` (its authors' score calibration, seeds 20000+); ``els_dit`` and ``els_cnn``
(``--models els_cnn``) the sizes of its calibration against the DiT / the CNN (``--referee``), judged here by the
UNet like every model and by the other networks in chapter 8.

Usage (about an hour per dataset on one CPU core, most of it ELS)::

    LOCALITY_DATA_DIR=... OMP_NUM_THREADS=1 python benchmarks/paper_protocol.py mnist
    LOCALITY_DATA_DIR=... OMP_NUM_THREADS=1 python benchmarks/paper_protocol.py fashion_mnist
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import time
from contextlib import contextmanager

import torch

from locality_lib import (PAPER_THRESHOLDS, DDPMSchedule, ELSDenoiser, LocalityDenoiser, LSDenoiser,
                          NearestDenoiser, OptimalDenoiser, PaddedELSDenoiser, WienerDenoiser, calibrate_patch_sizes,
                          load_dataset)
from locality_lib.compare import RESULTS_DIR as RESULTS  # shipped with the library (Colab)
from locality_lib.compare import (load_els_calibration, load_paper_samples, paper_noise, paper_protocol,
                                  save_paper_samples)
from locality_lib.epsilon import UNetDenoiser

#: Settings shared with chapter 8 (which reads them back from the file). ELS is the boundary-broken machine
#: (``ELSDenoiser``), its sizes from ``benchmarks/calibrate_els.py`` (Kamb & Ganguli's score calibration);
#: ``els_padded`` the padded machine (``PaddedELSDenoiser``) that earlier versions of the book ran.
CONFIG = {"seeds": 128, "n_train": 2000, "n_ls": 2000, "n_els": 2000, "n_els_padded": 50, "num_steps": 10,
          "ls_sizes": [3, 5, 7, 11, 15, 21], "els_padded_sizes": [3, 5, 7, 11], "calibration_seeds": [10_000, 10_001]}
MODELS = ["wiener", "optimal", "nearest", "locality", "ls", "els", "els_padded"]
#: ELS machines calibrated against another referee (``calibrate_els.py --referee``): same machine and N, their sizes.
#: Their samples do not depend on who judges them; chapter 8 scores them against every network.
REFEREE_ELS = {"els_dit": "dit", "els_cnn": "cnn"}


class Memo:
    """The reference with its outputs kept per (t, input): its own trajectory is computed once per batch
    of seeds, not once per model."""

    def __init__(self, den):
        self.den, self.cache = den, {}

    def __call__(self, x, t):
        key = (int(t), hash(x.detach().cpu().numpy().tobytes()))
        if key not in self.cache:
            self.cache[key] = self.den(x, t)
        return self.cache[key]


@contextmanager
def locked(path):
    """The results file's current content, written back on exit under an exclusive lock, so that
    several processes (``--seed-range``) can add their seeds to one file."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {"config": CONFIG, "models": {}, "patch_sizes": {}}
        if data["config"] != CONFIG:
            raise SystemExit(f"{path} was made with other settings {data['config']}; move it away to start again")
        yield data
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)


def els_from_calibration(dataset, path, schedule, name="els"):
    """The boundary-broken ELS machine on ``n_els`` images, with the sizes of ``calibrate_els.py``'s calibration
    against the UNet (``name = "els"``) or against the network of ``REFEREE_ELS[name]``."""
    referee = f"{REFEREE_ELS[name]}/{dataset}" if name in REFEREE_ELS else None
    try:
        cal = load_els_calibration(dataset, referee)
    except FileNotFoundError as e:
        raise SystemExit(f"{e} (--referee {referee})" if referee else str(e)) from None
    with locked(path) as data:
        data["patch_sizes"][name] = {str(t): p for t, p in cal["best"].items()}
        data.setdefault("calibration_seconds", {})[name] = cal["seconds"]
    subset = load_dataset(dataset, "train", n=CONFIG["n_els"], seed=0)
    return ELSDenoiser(subset, schedule, dict(cal["best"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", choices=["mnist", "fashion_mnist"])
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS + list(REFEREE_ELS))
    ap.add_argument("--batch", type=int, default=16, help="seeds per saved batch")
    ap.add_argument("--seed-range", type=int, nargs=2, default=[0, CONFIG["seeds"]], metavar=("FIRST", "END"),
                    help="run only seeds FIRST..END-1 (start a second process on another range to share the work)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (ELS's kernel runs one per thread)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    schedule = DDPMSchedule()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"paper_protocol_{args.dataset}.json"
    with locked(path):
        pass  # creates the file, or checks that its settings are these
    unet = UNetDenoiser.from_pretrained(args.dataset)
    full = load_dataset(args.dataset, "train")
    train = load_dataset(args.dataset, "train", n=CONFIG["n_train"], seed=0)  # the chapter's subset
    shape = tuple(full.shape[1:])
    wiener = WienerDenoiser(full, schedule)
    x_cal = paper_noise(CONFIG["calibration_seeds"], shape)

    def build(name):
        if name == "wiener":
            return wiener
        if name == "optimal":
            return OptimalDenoiser(train, schedule)
        if name == "nearest":
            return NearestDenoiser(train, schedule)
        if name == "locality":
            return LocalityDenoiser(train, schedule, threshold=PAPER_THRESHOLDS[args.dataset], stats=wiener.stats)
        if name == "els" or name in REFEREE_ELS:
            return els_from_calibration(args.dataset, path, schedule, name)
        cls, n, candidates = ((LSDenoiser, CONFIG["n_ls"], CONFIG["ls_sizes"]) if name == "ls"
                              else (PaddedELSDenoiser, CONFIG["n_els_padded"], CONFIG["els_padded_sizes"]))
        subset = load_dataset(args.dataset, "train", n=n, seed=0)
        with locked(path) as data:
            sizes = data["patch_sizes"].get(name)
        if sizes is None:
            start = time.perf_counter()
            best, _ = calibrate_patch_sizes(cls, subset, unet, x_cal, candidates, schedule, num_steps=CONFIG["num_steps"])
            with locked(path) as data:
                data["patch_sizes"][name] = sizes = {str(t): p for t, p in best.items()}
                data.setdefault("calibration_seconds", {})[name] = time.perf_counter() - start
            print(f"{name}: patch sizes {best}", flush=True)
        return cls(subset, schedule, {int(t): p for t, p in sizes.items()})

    memos = {}  # the reference's outputs per batch of seeds, shared by the models
    first, end = args.seed_range
    for name in args.models:
        model = build(name)
        for lo in range(first, min(end, CONFIG["seeds"]), args.batch):
            with locked(path) as data:
                done = set(data["models"].get(name, {}).get("seeds", []))
                sampled = set(load_paper_samples(args.dataset).get(name, ([], None))[0])
            seeds = [s for s in range(lo, min(lo + args.batch, end, CONFIG["seeds"])) if s not in done & sampled]
            if not seeds:
                continue
            ref = memos.setdefault(tuple(seeds), Memo(unet))
            res = paper_protocol({name: model}, ref, schedule, shape, seeds=seeds, num_steps=CONFIG["num_steps"],
                                 batch_size=len(seeds))
            with locked(path) as data:
                rec = data["models"].setdefault(name, {"seeds": [], "final_r2": [], "x0_r2": [],
                                                       "reference_on_model_r2": [], "seconds": 0.0})
                new = [k for k, s in enumerate(seeds) if s not in rec["seeds"]]  # another process may have run them
                for k, s in enumerate(seeds):  # sampled again for the samples file: the same numbers, or stop
                    if s in rec["seeds"]:
                        old = rec["final_r2"][rec["seeds"].index(s)]
                        if abs(old - float(res.final_r2[name][k])) > 1e-4:
                            raise SystemExit(f"{name} seed {s}: final r2 {float(res.final_r2[name][k]):.6f} now, "
                                             f"{old:.6f} in {path.name}: the model changed since that run")
                save_paper_samples(args.dataset, seeds, {name: res.samples[name], "reference": res.samples["reference"]})
                rec["seeds"] += [seeds[k] for k in new]
                rec["final_r2"] += res.final_r2[name][new].tolist()
                rec["x0_r2"] += res.x0_r2[name][:, new].T.tolist()  # one [K] row per seed
                rec["reference_on_model_r2"] += res.reference_on_model_r2[name][:, new].T.tolist()
                rec["seconds"] += res.seconds[name] * len(new) / len(seeds)
                data["timesteps"] = res.timesteps
                print(f"{args.dataset} {name}: {len(rec['seeds'])} seeds, mean final r2 "
                      f"{sum(rec['final_r2']) / len(rec['final_r2']):.3f}, {rec['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
