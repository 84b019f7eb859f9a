"""The fast path of ``LocalityDenoiser`` (runs of prefix sums, ``method="runs"``) against the plain
dense float64 formulation."""
import pytest
import torch

from locality_lib import DataStatistics, LocalityDenoiser, load_dataset
from locality_lib.locality import _RunLogits, _runs
from locality_lib.softmax import BatchwiseSoftmax, StreamingSoftmax
from reference import locality_batchwise_dense, locality_dense


def _local_masks(shape, radius, seed=0):
    """Random local masks: output pixel m sees the input pixels within ``radius`` (any channel), minus
    a random 20% -- different for every pixel, overlapping for neighbours."""
    C, H, W = shape
    g = torch.Generator().manual_seed(seed)
    c, i, j = torch.meshgrid(torch.arange(C), torch.arange(H), torch.arange(W), indexing="ij")
    i, j = i.flatten().double(), j.flatten().double()
    near = (i[:, None] - i[None]) ** 2 + (j[:, None] - j[None]) ** 2 <= radius**2
    return near & (torch.rand(near.shape, generator=g) > 0.2)


MASKS = {
    "local": lambda s: _local_masks(s, 2.0),
    "wide (more than half full)": lambda s: _local_masks(s, 9.0),
    "all ones": lambda s: torch.ones(s[0] * s[1] * s[2], s[0] * s[1] * s[2], dtype=torch.bool),
    "identical rows": lambda s: (torch.arange(s[0] * s[1] * s[2]) % 3 == 0).expand(s[0] * s[1] * s[2], -1),
    "empty rows and empty masks": lambda s: _local_masks(s, 1.5) & (torch.arange(s[0] * s[1] * s[2]) % 5 != 0)[:, None],
    "all zeros": lambda s: torch.zeros(s[0] * s[1] * s[2], s[0] * s[1] * s[2], dtype=torch.bool),
}


@pytest.mark.parametrize("shape", [(1, 10, 10), (3, 9, 7)])
@pytest.mark.parametrize("kind", list(MASKS))
def test_run_logits_equal_the_dense_product(shape, kind):
    M = MASKS[kind](shape)
    D = M.shape[0]
    sq = torch.rand(D, 37, dtype=torch.float64) * 4
    logits = _RunLogits(M, -0.7, "cpu", torch.float64)
    d = logits(torch.cat([sq, sq.cumsum(0)]) if logits.needs_prefix else sq)
    assert torch.allclose(d, -0.7 * (M.double() @ sq), rtol=0, atol=1e-11)


def test_runs_and_the_cheaper_of_a_row_or_its_complement():
    row = torch.tensor([[0, 1, 1, 1, 0, 1, 0, 1, 1], [1, 1, 0, 0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    r, s, e = _runs(row)
    assert list(zip(r.tolist(), s.tolist(), e.tolist())) == [(0, 1, 3), (0, 5, 5), (0, 7, 8), (1, 0, 1), (1, 8, 8)]
    # a wide disc: the terms count runs (two per image row it spans), not pixels
    D = 30 * 30
    disc = _local_masks((1, 30, 30), 9.0, seed=1) | _local_masks((1, 30, 30), 9.0, seed=2)
    logits = _RunLogits(disc, 1.0, "cpu", torch.float64)
    assert logits.num_terms < disc.sum() / 4
    # all ones but one pixel: the total minus that pixel (2 terms), not 2 runs of ones (3 terms)
    holes = ~torch.eye(D, dtype=torch.bool)
    assert _RunLogits(holes, 1.0, "cpu", torch.float64).num_terms <= 2 * D


@pytest.mark.parametrize("mode", ["exact", "batchwise"])
def test_pixel_major_softmax_matches_the_one_shot_formula(mode):
    """``dim=2``: logits ``[D, B, K]`` over training images k, values ``[D, K]``; fed in 3 chunks."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 2, 30, generator=g, dtype=torch.float64) * 40
    values = torch.randn(5, 30, generator=g, dtype=torch.float64)
    acc = StreamingSoftmax(dim=2) if mode == "exact" else BatchwiseSoftmax(dim=2)
    for i in range(0, 30, 12):
        acc.update(logits[:, :, i : i + 12].clone(), values[:, i : i + 12])
    if mode == "exact":
        expected = (torch.softmax(logits, 2) * values[:, None, :]).sum(2)
    else:  # the per-chunk softmax averaged with weights 12/30, 12/30, 6/30
        expected = sum((torch.softmax(logits[:, :, i : i + 12], 2) * values[:, None, i : i + 12]).sum(2) * (
            min(12, 30 - i) / 30) for i in range(0, 30, 12))
    assert torch.allclose(acc.result(), expected, rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def mnist_stats(mnist_small):
    return DataStatistics(mnist_small)


@pytest.mark.parametrize("softmax", ["exact", "batchwise"])
@pytest.mark.parametrize("convention", ["column", "row"])
@pytest.mark.parametrize("t", [999, 500, 100, 0])
def test_mnist_fast_path_matches_float64_reference(schedule, mnist_small, mnist_queries, mnist_stats, softmax, convention, t):
    bs = 128  # does not divide N = 300
    kw = dict(threshold=0.005, mask_convention=convention, softmax=softmax, batch_size=bs, stats=mnist_stats)
    fast = LocalityDenoiser(mnist_small, schedule, **kw)
    x = schedule.add_noise(mnist_queries[:3], t, torch.randn_like(mnist_queries[:3]))
    M = fast.mask(t)
    ref = (locality_dense(mnist_small, x, t, schedule, M) if softmax == "exact"
           else locality_batchwise_dense(mnist_small, x, t, schedule, M, bs))
    assert (fast(x, t) - ref).abs().max() < 1e-4
    assert (fast(x.double(), t) - ref).abs().max() < 1e-7  # float64 in, float64 out: no precision lost


@pytest.mark.parametrize("softmax", ["exact", "batchwise"])
def test_runs_and_dense_methods_agree(schedule, mnist_small, mnist_queries, mnist_stats, softmax):
    kw = dict(softmax=softmax, batch_size=100, stats=mnist_stats)
    fast, dense = LocalityDenoiser(mnist_small, schedule, **kw), LocalityDenoiser(mnist_small, schedule, method="dense", **kw)
    for t in (1, 300):
        x = schedule.add_noise(mnist_queries, t, torch.randn_like(mnist_queries))
        assert (fast(x, t) - dense(x, t)).abs().max() < 1e-4


@pytest.fixture(scope="module")
def patches():
    train = load_dataset("natural_patches", n=400, size=12)
    return train, DataStatistics(train), load_dataset("natural_patches", split="test", n=2, seed=1, size=12)


@pytest.mark.parametrize("softmax", ["exact", "batchwise"])
@pytest.mark.parametrize("t", [999, 500, 100, 0])
def test_colour_patches_full_complement_and_sparse_masks(schedule, patches, softmax, t):
    """3 channels; at t = 999 the masks are all ones (one logit per image), at t = 500 most masks are
    more than half full, at t = 100 they are sparse."""
    train, stats, q = patches
    fast = LocalityDenoiser(train, schedule, threshold=0.05, softmax=softmax, batch_size=96, stats=stats)
    x = schedule.add_noise(q, t, torch.randn_like(q))
    M = fast.mask(t)
    ref = (locality_dense(train, x, t, schedule, M) if softmax == "exact"
           else locality_batchwise_dense(train, x, t, schedule, M, 96))
    assert (fast(x, t) - ref).abs().max() < 1e-4
    assert (fast(x.double(), t) - ref).abs().max() < 1e-7


def test_mask_coverage_exercises_every_path(schedule, patches):
    train, stats, _ = patches
    den = LocalityDenoiser(train, schedule, threshold=0.05, stats=stats)
    assert bool(den.mask(999).all())
    assert isinstance(den._plan(999, "cpu", torch.float64), torch.Tensor)  # one shared mask row
    assert den.mask(500).double().mean() > 0.5 and isinstance(den._plan(500, "cpu", torch.float64), _RunLogits)
    assert den.mask(100).double().mean() < 0.5


def test_timestep_tensor_and_dtype(schedule, mnist_small, mnist_queries, mnist_stats):
    den = LocalityDenoiser(mnist_small, schedule, stats=mnist_stats)
    ts = torch.tensor([0, 500, 0, 999])
    x = schedule.add_noise(mnist_queries, ts, torch.randn_like(mnist_queries))
    out = den(x, ts)
    for b, t in enumerate(ts.tolist()):
        ref = locality_dense(mnist_small, x[b : b + 1], t, schedule, den.mask(t))
        assert (out[b : b + 1] - ref).abs().max() < 1e-4
    assert den(x.double(), ts).dtype == torch.float64 and out.dtype == torch.float32


def test_method_is_validated(mnist_small, mnist_stats):
    with pytest.raises(ValueError, match="method"):
        LocalityDenoiser(mnist_small, method="sparse", stats=mnist_stats)
