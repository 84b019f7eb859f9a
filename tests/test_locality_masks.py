"""The paper's mask rule (Lukoianov et al. 2025, Sec. 4, as their code runs it): ``d = diag(W_t)``, ``d[|d| < 1e-6] = 1``,
``W~ = W_t / d[:, None]``, keep ``|W~| >= tau max|W~|``, column convention; checked against a plain
row-by-row reference on a small subset and on all of MNIST (where the floor matters), and the outputs
against the float64 dense reference of that rule."""
from __future__ import annotations

import pytest
import torch

from locality_lib import DataStatistics, LocalityDenoiser, PAPER_DIAG_FLOOR, load_dataset, locality_masks
from reference import locality_dense, paper_masks

TS = [999, 900, 500, 200, 100, 20, 0]


@pytest.fixture(scope="module")
def full_stats():
    return DataStatistics(load_dataset("mnist"))


@pytest.fixture(scope="module")
def small_stats(mnist_small):
    return DataStatistics(mnist_small)


def wiener(stats, schedule, t):
    ab = schedule.abar(t)
    return stats.wiener_matrix((1 - ab) / ab)


@pytest.mark.parametrize("convention", ["column", "row"])
@pytest.mark.parametrize("which", ["small", "full"])
@pytest.mark.parametrize("t", TS)
def test_masks_follow_the_papers_rule(schedule, small_stats, full_stats, which, convention, t):
    W = wiener(small_stats if which == "small" else full_stats, schedule, t)
    assert torch.equal(locality_masks(W, 0.005, convention), paper_masks(W, 0.005, convention))


def test_the_floor_matters_on_all_of_mnist_at_high_noise(schedule, full_stats):
    """At t = 900 many live pixels have W[n, n] under 1e-6; without the floor they set the maximum."""
    W = wiener(full_stats, schedule, 900)
    d = W.diagonal()
    assert ((d.abs() < PAPER_DIAG_FLOOR) & full_stats.live).sum() > 100
    paper = locality_masks(W, 0.005).sum(1).double().mean()
    unfloored = locality_masks(W, 0.005, diag_floor=0).sum(1).double().mean()
    assert paper > 1.5 * unfloored  # the issue measured 319 px against 152 px


def test_a_pixel_under_the_floor_cannot_set_the_global_maximum():
    # pixel 0: tiny variance, a large ratio W[0, 1] / W[0, 0] = 3; pixel 2 has a ratio of 0.01
    W = torch.tensor([[1e-7, 3e-7, 0.0], [3e-7, 1.0, 0.01], [0.0, 0.01, 1.0]], dtype=torch.float64)
    paper = locality_masks(W, 0.005, "row")
    assert not paper[0].any()  # un-normalized and tiny
    assert paper[2, 1] and paper[1, 2]  # 0.01 >= 0.005 * max, max = 1 (the diagonal of pixel 1)
    unfloored = locality_masks(W, 0.005, "row", diag_floor=0)
    assert unfloored[0, 1] and not unfloored[2, 1]  # max = 3 set by pixel 0: 0.01 < 0.015


@pytest.mark.parametrize("threshold", [0.005, 0.02])
@pytest.mark.parametrize("t", TS)
def test_outputs_equal_the_dense_reference_of_the_papers_rule(schedule, full_stats, mnist_queries, t, threshold):
    """A 3,000-image softmax with whole-set statistics (the floor active), against the float64 reference."""
    train = load_dataset("mnist", n=3000, seed=4)
    den = LocalityDenoiser(train, schedule, threshold=threshold, stats=full_stats)
    x = schedule.add_noise(mnist_queries[:2], t, torch.randn_like(mnist_queries[:2]))
    ref = locality_dense(train, x, t, schedule, paper_masks(wiener(full_stats, schedule, t), threshold))
    assert (den(x, t) - ref.float()).abs().max() < 1e-4


def test_from_dataset_softmaxes_over_the_subset_with_whole_set_masks(schedule, full_stats, mnist_queries):
    den = LocalityDenoiser.from_dataset("mnist", n=500, seed=3, schedule=schedule)
    assert den.num_train == 500 and den.threshold == 0.005
    assert torch.equal(den.mask(200), locality_masks(wiener(full_stats, schedule, 200), 0.005))
    sub = load_dataset("mnist", n=500, seed=3)
    assert torch.equal(den.train, sub)
    assert not torch.equal(den.mask(200), LocalityDenoiser(sub, schedule).mask(200))  # the subset's own masks differ
