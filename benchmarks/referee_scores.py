"""Every stored final sample of the paper's protocol, and every network's own samples, judged by every network.

For each referee network (``--referees``, default the UNet, the DiT and the CNN of the dataset) its 10-step
DDIM samples from the protocol's initial noise (``compare.network_samples``, the seeds of
``paper_samples_<dataset>.npz``) judge, per seed, every stored model's final sample and every other referee's
sample (``compare.referee_scores``): final-sample r2 (the paper's formula, unbiased variance) and Pearson r.
Chapter 8 computes the same numbers itself and checks them against this file.

Writes ``locality_lib/results/referees_<dataset>.json``::

    {"referees": {"UNet": "unet/mnist", ...}, "seeds": [...],
     "final_r2": {referee: {samples: [per seed]}}, "pearson": {referee: {samples: [per seed, null if undefined]}},
     "seconds": ...}

where ``samples`` is a stored model (``"wiener"``, ``"els_cnn"``, ...) or a referee's label (its samples). The UNet's
stored samples (``"reference"`` in the samples file) appear as ``"UNet"``.

Usage (about a minute on this project's CPU)::

    LOCALITY_DATA_DIR=... python benchmarks/referee_scores.py mnist
"""
from __future__ import annotations

import argparse
import json
import math
import time

from locality_lib import DDPMSchedule, pretrained
from locality_lib.compare import RESULTS_DIR, load_paper_samples, network_samples, referee_scores

REFEREES = {"UNet": "unet", "DiT": "dit", "CNN": "cnn"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", choices=["mnist", "fashion_mnist"])
    ap.add_argument("--referees", nargs="+", default=list(REFEREES), choices=list(REFEREES))
    args = ap.parse_args()
    names = {k: f"{REFEREES[k]}/{args.dataset}" for k in args.referees}
    stored = load_paper_samples(args.dataset)
    if "reference" not in stored:
        raise SystemExit(f"no stored samples for {args.dataset}: run `python benchmarks/paper_protocol.py {args.dataset}`")
    seeds, ref = stored["reference"]
    shape, schedule = tuple(ref.shape[1:]), DDPMSchedule()
    start = time.perf_counter()
    nets = {k: pretrained(n) for k, n in names.items()}
    own = {k: (seeds, ref if k == "UNet" else network_samples(nets[k], seeds, shape, schedule, progress=True))
           for k in nets}
    out = {"referees": names, "seeds": [int(s) for s in seeds], "final_r2": {}, "pearson": {}}
    for k in nets:
        judged = referee_scores(args.dataset, own[k], schedule, extra={o: own[o] for o in own if o not in (k, "UNet")})
        order = {name: {s: i for i, s in enumerate(sd)} for name, sd in judged.seeds.items()}
        label = {"unet": "UNet"}
        for what, values in (("final_r2", judged.final_r2), ("pearson", judged.pearson)):
            out[what][k] = {label.get(m, m): [None if math.isnan(v := float(values[m][order[m][s]])) else v
                                              for s in out["seeds"]]
                            for m in values if m != "reference" and label.get(m, m) != k}
    out["seconds"] = round(time.perf_counter() - start, 1)
    path = RESULTS_DIR / f"referees_{args.dataset}.json"
    path.write_text(json.dumps(out))
    print(f"{args.dataset}: {len(out['seeds'])} seeds, referees {list(names)} ({out['seconds']:.0f} s) -> {path}")


if __name__ == "__main__":
    main()
