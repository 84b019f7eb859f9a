"""LS / ELS machines and the patch posterior mean against plain float64 references and closed forms."""
import pytest
import torch
import torch.nn.functional as F

from locality_lib import (
    DDPMSchedule, ELSDenoiser, LSDenoiser, OptimalDenoiser, PaddedELSDenoiser, PatchPosteriorDenoiser,
    calibrate_by_score, calibrate_patch_sizes, els_kernel,
)
from locality_lib.patches import box_sum, els_plan, unique_rows

from reference import abar64, els_boundary_dense, els_candidates

TIMES = [0, 500, 999]


# ---- plain references: patches cut by slicing a zero-padded copy, direct differences, float64 ----

def _patches(img, size):
    """``img [C, H, W]`` -> ``[H W, C, size, size]``: the zero-padded patch around every pixel."""
    r = size // 2
    C, H, W = img.shape
    pad = torch.zeros(C, H + 2 * r, W + 2 * r, dtype=torch.float64)
    pad[:, r : r + H, r : r + W] = img
    return torch.stack([pad[:, i : i + size, j : j + size] for i in range(H) for j in range(W)])


def ls_dense(train, x, t, size, schedule):
    ab = abar64(schedule, t)
    out = torch.zeros(x.shape, dtype=torch.float64)
    Yp = torch.stack([_patches(y.double(), size) for y in train])  # [N, L, C, P, P]
    for b in range(x.shape[0]):
        Xp = _patches(x[b].double(), size)  # [L, C, P, P]
        d = ((Xp[None] - ab**0.5 * Yp) ** 2).flatten(2).sum(-1)  # [N, L]
        w = torch.softmax(-d / (2 * (1 - ab)), dim=0)
        out[b] = (w[:, None, :] * train.double().flatten(2)).sum(0).reshape(x.shape[1:])
    return out


def els_dense(train, x, t, size, schedule):
    ab = abar64(schedule, t)
    out = torch.zeros(x.shape, dtype=torch.float64)
    Yp = torch.cat([_patches(y.double(), size) for y in train]).flatten(1)  # [N L, C P^2]
    centre = torch.cat([y.double().flatten(1).T for y in train])  # [N L, C]
    for b in range(x.shape[0]):
        Xp = _patches(x[b].double(), size).flatten(1)  # [L, C P^2]
        d = ((Xp[:, None] - ab**0.5 * Yp[None]) ** 2).sum(-1)  # [L, N L]
        w = torch.softmax(-d / (2 * (1 - ab)), dim=1)
        out[b] = (w @ centre).T.reshape(x.shape[1:])
    return out


def patch_posterior_dense(train, x, t, size, schedule):
    ab = abar64(schedule, t)
    r = size // 2
    B, C, H, W = x.shape
    total = torch.zeros(B, C, H + 2 * r, W + 2 * r, dtype=torch.float64)
    count = torch.zeros(H + 2 * r, W + 2 * r, dtype=torch.float64)
    Yp = torch.stack([_patches(y.double(), size) for y in train])  # [N, L, C, P, P]
    for b in range(B):
        Xp = _patches(x[b].double(), size)
        d = ((Xp[None] - ab**0.5 * Yp) ** 2).flatten(2).sum(-1)  # [N, L]
        w = torch.softmax(-d / (2 * (1 - ab)), dim=0)
        mu = (w[:, :, None, None, None] * Yp).sum(0)  # [L, C, P, P]
        for m in range(H * W):
            i, j = divmod(m, W)
            total[b, :, i : i + size, j : j + size] += mu[m]
            if b == 0:
                count[i : i + size, j : j + size] += 1
    return (total / count)[:, :, r : r + H, r : r + W]


@pytest.fixture(scope="module")
def digits(mnist_small, mnist_queries):
    """14 x 14 centre crops of MNIST: training images [40, 1, 14, 14] and queries [2, 1, 14, 14]."""
    return mnist_small[:40, :, 7:21, 7:21], mnist_queries[:2, :, 7:21, 7:21]


@pytest.fixture(scope="module")
def tiny():
    """Non-square two-channel images with repeated rows (so that ELS merges duplicate patches)."""
    g = torch.Generator().manual_seed(0)
    train = torch.rand(5, 2, 4, 6, generator=g) * 2 - 1
    train[:, :, :2] = -1
    x = torch.randn(3, 2, 4, 6, generator=g)
    return train, x


@pytest.mark.parametrize("t", TIMES)
@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize(
    "model, dense", [(LSDenoiser, ls_dense), (PaddedELSDenoiser, els_dense), (PatchPosteriorDenoiser, patch_posterior_dense)]
)
def test_matches_dense_reference(tiny, schedule, model, dense, size, t):
    train, x = tiny
    want = dense(train, x, t, size, schedule)
    for chunk in (2**20, 37):  # one chunk, and many (ELS also splits the queries)
        got = model(train, schedule, size, chunk_elements=chunk)(x.double(), t)
        assert (got - want).abs().max() < 1e-10, (model.__name__, size, t, chunk)


@pytest.mark.parametrize("t", TIMES)
def test_whole_image_patch_is_the_optimal_denoiser(digits, schedule, t):
    train, x0 = digits
    x = schedule.add_noise(x0, t, torch.randn_like(x0))
    size = 2 * 14 - 1  # covers the image from every centre
    want = OptimalDenoiser(train, schedule)(x, t)
    assert (LSDenoiser(train, schedule, size)(x, t) - want).abs().max() < 1e-4
    assert (PatchPosteriorDenoiser(train, schedule, size)(x, t) - want).abs().max() < 1e-4


@pytest.mark.parametrize("t", TIMES)
def test_size_one_closed_forms(digits, schedule, t):
    """LS(1): a softmax over the training values at the same pixel; ELS(1): over every training pixel."""
    train, x0 = digits
    train = train.double()
    x = schedule.add_noise(x0, t, torch.randn_like(x0)).double()
    ab = abar64(schedule, t)
    xf, yf = x.flatten(1), train.flatten(1)  # [B, D], [N, D]
    w = torch.softmax(-((xf[:, None] - ab**0.5 * yf[None]) ** 2) / (2 * (1 - ab)), dim=1)  # over images
    ls = (w * yf[None]).sum(1).reshape(x.shape)
    v = yf.reshape(-1)  # every pixel value of every image
    w = torch.softmax(-((xf[..., None] - ab**0.5 * v) ** 2) / (2 * (1 - ab)), dim=-1)  # [B, D, N D]
    els = (w @ v).reshape(x.shape)
    assert (LSDenoiser(train, schedule, 1)(x, t) - ls).abs().max() < 1e-4
    assert (PatchPosteriorDenoiser(train, schedule, 1)(x, t) - ls).abs().max() < 1e-4
    assert (PaddedELSDenoiser(train, schedule, 1)(x, t) - els).abs().max() < 1e-4
    assert (ELSDenoiser(train, schedule, 1)(x, t) - els).abs().max() < 1e-4  # P = 1: every pixel is interior


def _shift(x, di, dj):
    """Move the content of ``x [B, C, H, W]`` by (di, dj) >= 0, filling with zeros."""
    out = torch.zeros_like(x)
    out[:, :, di:, dj:] = x[:, :, : x.shape[2] - di, : x.shape[3] - dj]
    return out


@pytest.mark.parametrize("t", [100, 500])
def test_padded_els_is_translation_equivariant_away_from_the_border(digits, schedule, t):
    """Output at m depends only on the query patch P_m: for x' = x shifted by d (zero fill),
    ELS(x')[m + d] = ELS(x)[m] wherever the patch around m + d lies inside the image. LS is not."""
    (train, x0), size, (di, dj), n = digits, 5, (2, 3), 14
    x = schedule.add_noise(x0, t, torch.randn_like(x0)).double()
    xs = _shift(x, di, dj)
    r = size // 2
    inner = (slice(None), slice(None), slice(max(r, di), n - r), slice(max(r, dj), n - r))  # in x' coordinates
    before = (slice(None), slice(None), slice(max(r, di) - di, n - r - di), slice(max(r, dj) - dj, n - r - dj))
    els = PaddedELSDenoiser(train, schedule, size)
    assert (els(xs, t)[inner] - els(x, t)[before]).abs().max() < 1e-10
    # the boundary-broken machine: every interior pixel has the same candidates, so it is equivariant between
    # interior pixels (m and m + d both at least r from every border), and not where m is in a border band
    els = ELSDenoiser(train, schedule, size)
    both = (slice(None), slice(None), slice(r + di, n - r), slice(r + dj, n - r))
    src = (slice(None), slice(None), slice(r, n - r - di), slice(r, n - r - dj))
    assert (els(xs, t)[both] - els(x, t)[src]).abs().max() < 1e-10
    assert (els(xs, t)[inner] - els(x, t)[before]).abs().max() > 1e-2
    ls = LSDenoiser(train, schedule, size)
    assert (ls(xs, t)[inner] - ls(x, t)[before]).abs().max() > 1e-2


def test_patch_size_schedules(tiny, schedule):
    train, x = tiny
    for model in (LSDenoiser, ELSDenoiser, PaddedELSDenoiser, PatchPosteriorDenoiser):
        by_dict = model(train, schedule, {500: 3, 0: 1})
        by_fn = model(train, schedule, lambda t: 3 if t >= 250 else 1)
        for t, size in ((500, 3), (0, 1)):
            want = model(train, schedule, size)(x, t)
            assert torch.equal(by_dict(x, t), want) and torch.equal(by_fn(x, t), want)
        batch = by_dict(x[:2], torch.tensor([500, 0]))  # a [B] tensor of timesteps: one size per t
        assert torch.equal(batch[0], model(train, schedule, 3)(x[:1], 500)[0])
        assert torch.equal(batch[1], model(train, schedule, 1)(x[1:2], 0)[0])
        with pytest.raises(ValueError, match="no size for t = 7"):
            by_dict(x, 7)
        with pytest.raises(ValueError, match="odd int"):
            model(train, schedule, lambda t: 4)(x, 3)


@pytest.mark.parametrize("bad", [2, 0, -3, 3.0, True, "3", None, {500: 2}, {500: 0}, {1000: 3}, {"500": 3}])
def test_bad_patch_sizes_raise(tiny, schedule, bad):
    train, _ = tiny
    for model in (LSDenoiser, ELSDenoiser, PaddedELSDenoiser, PatchPosteriorDenoiser):
        with pytest.raises(ValueError):
            model(train, schedule, bad)


def test_bad_inputs_raise(tiny, schedule):
    train, x = tiny
    for model in (LSDenoiser, ELSDenoiser, PaddedELSDenoiser, PatchPosteriorDenoiser):
        with pytest.raises(ValueError, match="chunk_elements"):
            model(train, schedule, 3, chunk_elements=0)
        with pytest.raises(ValueError, match="image shape"):
            model(train, schedule, 3)(x[:, :1], 500)
        with pytest.raises(ValueError):
            model(train, schedule, 3)(x, 1000)


def test_box_sum_and_unique_rows():
    a = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    for size in (1, 3, 5, 9):
        want = F.avg_pool2d(a, size, stride=1, padding=size // 2, count_include_pad=True) * size**2
        assert torch.allclose(box_sum(a, size), want, atol=1e-12)
    assert torch.allclose(box_sum(a, 13), a.sum((-2, -1), keepdim=True).expand_as(a), atol=1e-12)  # covers it all
    Y = torch.randint(0, 3, (200, 4)).double()
    U, counts = unique_rows(Y)
    U_ref, counts_ref = torch.unique(Y, dim=0, return_counts=True)
    order = torch.tensor(sorted(range(len(U)), key=lambda k: U[k].tolist()))
    assert torch.equal(U[order], U_ref) and torch.equal(counts[order], counts_ref)


def test_calibration_recovers_the_reference_size(tiny, schedule):
    """When the reference is itself LS(3) (or the optimal denoiser), size 3 (or the whole image) wins at every step."""
    train, x_T = tiny
    best, comp = calibrate_patch_sizes(LSDenoiser, train, LSDenoiser(train, schedule, 3), x_T, [1, 3, 5], schedule,
                                       num_steps=4)
    assert best == {t: 3 for t in schedule.ddim_timesteps(4)}
    assert comp.metrics["r2"]["P = 3"] == pytest.approx([1.0] * 4)
    best, _ = calibrate_patch_sizes(LSDenoiser, train, OptimalDenoiser(train, schedule), x_T, [1, 11], schedule,
                                    metric="mse", timesteps=[900, 300, 0])
    assert best == {900: 11, 300: 11, 0: 11}
    for bad in ([], [3, 3], [2]):
        with pytest.raises(ValueError):
            calibrate_patch_sizes(LSDenoiser, train, OptimalDenoiser(train, schedule), x_T, bad, schedule)


def test_device_and_dtype_follow_the_input(tiny, schedule):
    train, x = tiny
    for model in (LSDenoiser, ELSDenoiser, PaddedELSDenoiser, PatchPosteriorDenoiser):
        out = model(train, schedule, 3)(x, 500)
        assert out.dtype == torch.float32 and out.device == x.device and out.shape == x.shape
        assert out.abs().max() <= 1  # a convex combination of training pixels


# ---- the boundary-broken ELS machine (Kamb & Ganguli's code for zero-padded networks) ----

def test_els_candidate_classes():
    """The rule, case by case, on a 7 x 7 image with P = 3 (r = 1): interior, band, corner."""
    interior = els_candidates(7, 7, 1, 3, 3)
    assert len(interior) == 25 and (1, 1) in interior and (0, 3) not in interior
    assert els_candidates(7, 7, 1, 0, 3) == [(0, q) for q in range(1, 6)]  # top band: same row, interior columns
    assert els_candidates(7, 7, 1, 4, 6) == [(p, 6) for p in range(1, 6)]  # right band: same column
    assert els_candidates(7, 7, 1, 0, 0) == [(0, 0)] and els_candidates(7, 7, 1, 6, 0) == [(6, 0)]  # corners
    assert all(els_candidates(7, 7, 3, i, j) == [(i, j)] for i in (0, 2, 4, 6) for j in (0, 2, 4, 6))  # P = 7 = H


@pytest.mark.parametrize("shape", [(1, 9, 9), (2, 8, 11)])
def test_els_plan_lists_each_candidate_once(shape):
    """Grouped by displacement, the plan holds exactly the pairs (m, l) of the rule, each once."""
    C, H, W = shape
    for r in range(0, 6):
        dy, dx, rect, valid = els_plan(H, W, r)
        assert (dy[0], dx[0]) == (0, 0)
        pairs = set()
        for d in range(dy.shape[0]):
            ok = valid[d].reshape(H, W).bool()
            i0, i1, j0, j1 = rect[d].tolist()
            assert not ok[:i0].any() and not ok[i1:].any() and not ok[:, :j0].any() and not ok[:, j1:].any()
            for i, j in ok.nonzero().tolist():
                pairs.add(((i, j), (i + int(dy[d]), j + int(dx[d]))))
        want = {((i, j), l) for i in range(H) for j in range(W) for l in els_candidates(H, W, r, i, j)}
        assert pairs == want, r


@pytest.fixture(params=["kernel", "torch"])
def els_path(request, monkeypatch):
    """Run the ELS machine through the compiled kernel, or force its torch path."""
    if request.param == "kernel" and els_kernel.load() is None:
        pytest.skip("no C compiler: the kernel path is not available")
    if request.param == "torch":
        monkeypatch.setattr(els_kernel, "load", lambda: None)
    return request.param


@pytest.mark.parametrize("shape", [(1, 9, 9), (2, 8, 11)])
def test_els_matches_pixel_by_pixel_reference_on_small_images(els_path, shape, schedule):
    """Every border class, P from 1 to H + 2 (LS beyond H), t from 999 to 0; several chunks and threads."""
    g = torch.Generator().manual_seed(1)
    C, H, W = shape
    train = torch.rand(11, C, H, W, generator=g) * 2 - 1
    x = torch.randn(2, C, H, W, generator=g, dtype=torch.float64)
    times = [999, 900, 500, 100, 0]
    for size in range(1, H + 3, 2):
        want = els_boundary_dense(train, x, times, schedule, size)
        for chunk in (2**20, 150):
            den = ELSDenoiser(train, schedule, size, chunk_elements=chunk)
            for k, t in enumerate(times):
                assert (den(x, t) - want[k]).abs().max() < 1e-9, (els_path, size, t, chunk)


def test_els_matches_pixel_by_pixel_reference_on_mnist(mnist_small, mnist_queries, schedule):
    """28 x 28 digits, P = 3 ... 29 at t = 500 and P = 3, 11, 27 at t = 900 and 100, to 1e-4 (float64)."""
    train, x = mnist_small[:3], mnist_queries[:1].double()
    for size in range(3, 30, 2):
        times = [500] + ([900, 100] if size in (3, 11, 27) else [])
        want = els_boundary_dense(train, x, times, schedule, size)
        den = ELSDenoiser(train, schedule, size)
        for k, t in enumerate(times):
            assert (den(x, t) - want[k]).abs().max() < 1e-4, (size, t)


@pytest.mark.parametrize("t", [900, 100])
def test_els_limits(digits, schedule, t):
    """Corners take l = m only, so they equal the LS machine there; P >= H makes every pixel a corner (LS)."""
    train, x0 = digits
    x = schedule.add_noise(x0, t, torch.randn_like(x0)).double()
    size, r = 5, 2
    els, ls = ELSDenoiser(train, schedule, size)(x, t), LSDenoiser(train, schedule, size)(x, t)
    corner = (slice(None), slice(None), slice(0, r), slice(0, r))
    assert (els[corner] - ls[corner]).abs().max() < 1e-10
    assert (els[:, :, r:-r, r:-r] - ls[:, :, r:-r, r:-r]).abs().max() > 1e-2  # the interior is not LS
    assert (ELSDenoiser(train, schedule, 15)(x, t) - LSDenoiser(train, schedule, 15)(x, t)).abs().max() < 1e-10


def test_els_keeps_the_layout_at_high_noise(digits, schedule):
    """At t = 900 the padded machine's estimate is nearly flat (position enters through a penalty of order
    abar / (1 - abar)); the border classes keep rows of the border apart, so the estimate has structure."""
    train, x0 = digits
    x = schedule.add_noise(x0, 900, torch.randn_like(x0)).double()
    padded = PaddedELSDenoiser(train, schedule, 3)(x, 900)
    broken = ELSDenoiser(train, schedule, 3)(x, 900)
    assert broken.std(dim=(2, 3)).min() > 3 * padded.std(dim=(2, 3)).max()


def test_calibration_by_score_recovers_the_reference_size(tiny, schedule):
    """When the reference is itself ELS(3), size 3 wins for every sample at every step (cosine 1)."""
    train, x_T = tiny
    best, cos, comp = calibrate_by_score(ELSDenoiser, train, ELSDenoiser(train, schedule, 3), x_T, [1, 3, 5], schedule,
                                         num_steps=4)
    assert best == {t: 3 for t in schedule.ddim_timesteps(4)}
    assert cos.shape == (4, 3, x_T.shape[0]) and torch.allclose(cos[:, 1], torch.ones(4, x_T.shape[0], dtype=torch.float64))
    assert (cos[:, [0, 2]] < 1 - 1e-6).all()
