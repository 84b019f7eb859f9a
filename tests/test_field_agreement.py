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
