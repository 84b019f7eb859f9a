"""The fast paths of ``LocalityDenoiser`` against the plain dense float64 formulation: the shared mask
(``denoise_shared_mask``), runs of prefix sums in torch (``denoise_runs``) and in the compiled CPU kernel
(``denoise_fused``), each on its own and through the dispatcher."""
import pytest
import torch

from locality_lib import DataStatistics, LocalityDenoiser, load_dataset, runs_kernel
from locality_lib.locality import (_FusedPlan, _RunLogits, _runs, denoise_dense, denoise_fused, denoise_runs,
                                   denoise_shared_mask)
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


@pytest.fixture(scope="module")
def patches():
    train = load_dataset("natural_patches", n=400, size=12)
    return train, DataStatistics(train), load_dataset("natural_patches", split="test", n=2, seed=1, size=12)


@pytest.fixture(scope="module")
def kernel():
    if runs_kernel.load() is None:
        pytest.skip("no C compiler: the compiled kernel is not available here")


def _paths(x, y, M, ab, coef, softmax, bs):
    """Every evaluation of the formula that applies to ``M``: name -> ``[B, D]`` (float64 in, float64 out;
    ``y [N, D]`` holds float32 values, as the library stores training sets)."""
    yT = y.T.contiguous()
    out = {"dense": denoise_dense(x, y, M, ab, coef, softmax, bs),
           "runs": denoise_runs(x, yT, _RunLogits(M, coef, "cpu", torch.float64), ab, softmax, bs)}
    if runs_kernel.load() is not None:
        for threads in (1, 3):  # 3 threads: uneven ranges of training images
            out[f"fused, {threads} threads"] = denoise_fused(x, yT.float(), _FusedPlan(M, coef), ab, softmax, bs, threads)
    if bool((M == M[0]).all()):
        out["shared mask"] = denoise_shared_mask(x, yT, M[0].double(), ab, coef, softmax, bs)
    return out


TIMES = [999, 900, 500, 200, 100, 20, 0]


@pytest.mark.parametrize("softmax", ["exact", "batchwise"])
@pytest.mark.parametrize("convention", ["column", "row"])
@pytest.mark.parametrize("data", ["mnist", "colour patches"])
@pytest.mark.parametrize("t", TIMES)
def test_every_path_matches_the_float64_reference(schedule, mnist_small, mnist_queries, mnist_stats, patches,
                                                  data, convention, softmax, t):
    """Each path on its own (float64: to 1e-10) and through the dispatcher with float32 inputs (1e-4) and
    float64 inputs (1e-10). N = 300 (MNIST) / 400 (patches) is no multiple of the batch size or the
    kernel's tile, so last batches and tiles are partial."""
    if data == "mnist":
        train, stats, q, threshold, bs = mnist_small, mnist_stats, mnist_queries[:3], 0.005, 128
    else:
        (train, stats, q), threshold, bs = patches, 0.05, 96
    den = LocalityDenoiser(train, schedule, threshold=threshold, mask_convention=convention, softmax=softmax,
                           batch_size=bs, stats=stats)
    x = schedule.add_noise(q, t, torch.randn(q.shape, generator=torch.Generator().manual_seed(t)))
    M = den.mask(t)
    ref = (locality_dense(train, x, t, schedule, M) if softmax == "exact"
           else locality_batchwise_dense(train, x, t, schedule, M, bs))
    ab, coef = schedule.abar(t), den._logit_scale(t)
    flat = x.reshape(x.shape[0], -1).double()
    for name, out in _paths(flat, train.reshape(train.shape[0], -1).double(), M, ab, coef, softmax, bs).items():
        assert (out.reshape(x.shape) - ref).abs().max() < 1e-10, name
    assert (den(x, t) - ref).abs().max() < 1e-4
    assert (den(x.double(), t) - ref).abs().max() < 1e-10


@pytest.mark.parametrize("softmax", ["exact", "batchwise"])
@pytest.mark.parametrize("kind", list(MASKS))
def test_fused_kernel_equals_the_dense_formula_for_any_mask(kernel, softmax, kind):
    """Random local, wide, identical, empty and all-zero masks on 3 x 9 x 7 images; values of the
    logits' size at t = 0 (coef = -5000): the kernel's exponent clamp must not show."""
    M = MASKS[kind]((3, 9, 7))
    g = torch.Generator().manual_seed(1)
    y = torch.rand(53, M.shape[0], generator=g, dtype=torch.float64) * 2 - 1
    x = torch.randn(4, M.shape[0], generator=g, dtype=torch.float64)
    y = y.float().double()  # the kernel reads the training set in float32, as the library stores it
    for ab, coef in ((0.3, -0.7), (0.9999, -5000.0)):
        out = denoise_fused(x, y.float().T.contiguous(), _FusedPlan(M, coef), ab, softmax, batch_size=20, threads=2)
        assert (out - denoise_dense(x, y, M, ab, coef, softmax, batch_size=20)).abs().max() < 1e-10


def test_fused_plan_shares_rows_and_profiles(kernel, schedule, patches, mnist_small, mnist_stats):
    """Pixels with equal masks share one logit row; every phase of the kernel is timed."""
    den = LocalityDenoiser(mnist_small, schedule, stats=mnist_stats)
    M = den.mask(500)
    plan = den._plan(500, "cpu", torch.float64)
    assert isinstance(plan, _FusedPlan) and plan.num_rows == torch.unique(M, dim=0).shape[0] < M.shape[0]
    assert torch.equal(M, torch.unique(M, dim=0)[plan.row.long()])
    den(schedule.add_noise(mnist_small[:2], 500, torch.randn_like(mnist_small[:2])), 500)
    assert bool((den.profile > 0).all())


def test_mask_coverage_exercises_every_path(schedule, patches):
    train, stats, _ = patches
    den = LocalityDenoiser(train, schedule, threshold=0.05, stats=stats)
    assert bool(den.mask(999).all())
    assert isinstance(den._plan(999, "cpu", torch.float64), torch.Tensor)  # one shared mask row
    fast = _FusedPlan if runs_kernel.load() is not None else _RunLogits
    assert den.mask(500).double().mean() > 0.5 and isinstance(den._plan(500, "cpu", torch.float64), fast)
    assert isinstance(den._plan(500, "cpu", torch.float32), _RunLogits)  # float32 (MPS-like) requests: torch
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
