"""Field agreement: cosines, widths and mask shares of sensitivity fields against the Wiener filter's."""
import pytest
import torch

from locality_lib import DDPMSchedule, WienerDenoiser, load_dataset
from locality_lib.base import Denoiser
from locality_lib.data import plant_pattern, w_mask
from locality_lib.sensitivity import field_agreement, field_width, mask_share, pixel_indices

SHAPE = (1, 28, 28)
PIXELS = [(0, 14, 14), (0, 2, 5), (0, 20, 3)]  # centre, a W pixel, a corner


@pytest.fixture(scope="module")
def planted():
    train = plant_pattern(load_dataset("mnist", n=4000, seed=0))
    test = plant_pattern(load_dataset("mnist", "test", n=6, seed=1), seed=9)
    return WienerDenoiser(train, DDPMSchedule()), test


class Scaled(Denoiser):
    """``den(x_t, t) = c x_t``: Jacobian ``c I``, every field a single pixel."""

    def __init__(self, c, schedule):
        self.c, self.schedule, self.shape = c, schedule, SHAPE

    def _denoise(self, x_t, t):
        return self.c * x_t


def test_the_wiener_filter_agrees_with_itself(planted):
    wiener, test = planted
    fa = field_agreement(wiener, wiener, test.double(), [100, 600], PIXELS, mask=w_mask(), progress=False)
    torch.testing.assert_close(fa["cosine_all"], torch.ones(2, 6, 3, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(fa["width"], fa["wiener_width"], rtol=1e-9, atol=0)
    torch.testing.assert_close(fa["mask_share"], fa["wiener_mask_share"], rtol=1e-9, atol=0)
    assert fa["t"].tolist() == [100, 600]
    # the planted W: at t = 600 the W pixel's field sits largely on the rest of the W, the centre's does not
    assert fa["wiener_mask_share"][1, 1] > 0.3 and fa["wiener_mask_share"][1, 0] < 0.01


def test_a_one_pixel_field_has_the_closed_form_cosine(planted):
    """For den = c x_t the field is c e_m, so cos = F[m] / |F| (F the Wiener row), width 0, mask share 0."""
    wiener, test = planted
    t = 400
    fa = field_agreement(Scaled(0.7, wiener.schedule), wiener, test.double(), [t], PIXELS, mask=w_mask(), progress=False)
    idx = pixel_indices(PIXELS, SHAPE)
    rows = wiener.jacobian(t)[idx]  # [P, D]
    expected = rows[range(3), idx] / rows.norm(dim=1)
    torch.testing.assert_close(fa["cosine"][0], expected, rtol=1e-9, atol=0)
    assert fa["width"].abs().max() == 0 and fa["mask_share"].abs().max() == 0


def test_field_width_and_mask_share_by_hand():
    f = torch.zeros(1, 784, dtype=torch.float64)
    m = 14 * 28 + 14
    f[0, m], f[0, m + 3], f[0, m - 4 * 28] = 1.0, 2.0, -2.0  # 3 px right, 4 px up
    # width^2 = (1*0 + 4*9 + 4*16) / (1 + 4 + 4)
    assert field_width(f, [m], SHAPE).item() == pytest.approx((100 / 9) ** 0.5)
    mask = torch.zeros(SHAPE)
    mask[0, 14, 17] = mask[0, 14, 14] = mask[0, 14, 15] = 1  # 3 px away, the pixel itself, a neighbour
    f[0, m + 1] = 5.0
    assert mask_share(f, [m], SHAPE, mask).item() == pytest.approx(2 / 10)  # only the far one counts
    assert mask_share(f, [m], SHAPE, mask, near=3).item() == 0
    assert field_width(f.reshape(1, 1, 28, 28)[None], [m], SHAPE).shape == (1, 1)  # [..., P, C, H, W] too
    with pytest.raises(ValueError, match="mask has shape"):
        mask_share(f, [m], SHAPE, torch.zeros(28, 28))


class Smooth(Denoiser):
    """A fixed non-local linear map ``x -> A x`` plus a nonlinearity, so every field differs per input."""

    def __init__(self, schedule, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(784, 784, generator=g, dtype=torch.float64) / 28
        self.schedule, self.shape = schedule, SHAPE

    def _denoise(self, x_t, t):
        y = x_t.reshape(x_t.shape[0], -1) @ self.a.T.to(x_t.dtype)
        return torch.tanh(y + x_t.reshape(x_t.shape[0], -1)).reshape(x_t.shape)


def test_per_input_measures_equal_a_loop_over_inputs_and_pixels(planted):
    """width_all, cosine_all and pixel_cosine_all, computed one (input, pixel) at a time from the Jacobian
    row and the pixel positions, with no broadcasting."""
    wiener, test = planted
    den, t = Smooth(wiener.schedule), 300
    fa = field_agreement(den, wiener, test.double(), [t], PIXELS, progress=False)
    eps = torch.randn(test.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x_t = wiener.schedule.add_noise(test.double(), t, eps)
    wrows = wiener.jacobian(t)
    for b in range(test.shape[0]):
        x = x_t[b : b + 1].clone().requires_grad_(True)
        out = den(x, t).reshape(-1)
        for p, (_, i, j) in enumerate(PIXELS):
            m = i * 28 + j
            (g,) = torch.autograd.grad(out[m], x, retain_graph=True)
            g = g.reshape(-1)
            num = sum(float(g[n]) ** 2 * ((n // 28 - i) ** 2 + (n % 28 - j) ** 2) for n in range(784))
            assert fa["width_all"][0, b, p].item() == pytest.approx((num / float(g.pow(2).sum())) ** 0.5, rel=1e-9)
            f = wrows[m]
            cos = float(g @ f) / (float(g.norm()) * float(f.norm()))
            assert fa["cosine_all"][0, b, p].item() == pytest.approx(cos, rel=1e-9)
            assert fa["pixel_cosine_all"][0, b, p].item() == pytest.approx(float(g[m] / g.norm()), rel=1e-9)
            assert fa["wiener_pixel_cosine"][0, p].item() == pytest.approx(float(f[m] / f.norm()), rel=1e-9)
    torch.testing.assert_close(fa["width"], fa["width_all"].mean(1))


def test_on_grid_fields_equal_each_row_unshuffled_by_itself(planted):
    """The field of a shuffled network read on the grid (``on_grid``) is, row by row, the field it computes on
    shuffled inputs with each row's input pixels put back: ``F_grid[m][perm[j]] = F_seen[inv[m]][j]``."""
    import functools

    from locality_lib import on_grid
    from locality_lib.data import pixel_permutation, shuffle_pixels
    from locality_lib.sensitivity import sensitivity_field

    wiener, test = planted
    den = Smooth(wiener.schedule, seed=3)
    den.transform = functools.partial(shuffle_pixels, seed=5)
    perm = pixel_permutation(784, 5)
    inv = torch.argsort(perm)
    x = test[:2].double()
    t = 200
    grid = sensitivity_field(on_grid(den), x, t, PIXELS).flatten(2)  # [B, P, D]
    seen_pixels = [int(inv[i * 28 + j]) for _, i, j in PIXELS]
    seen = sensitivity_field(den, shuffle_pixels(x, 5), t, seen_pixels).flatten(2)
    for b in range(2):
        for p in range(len(PIXELS)):
            row = torch.empty(784, dtype=torch.float64)
            for j in range(784):
                row[perm[j]] = seen[b, p, j]
            torch.testing.assert_close(grid[b, p], row, rtol=1e-12, atol=1e-14)
    widths = field_width(grid, PIXELS, SHAPE)
    assert widths.shape == (2, 3) and (widths > 1).all()  # a non-local map: wide fields
