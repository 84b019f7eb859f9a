import pytest
import torch

from locality_lib import DDPMSchedule


def test_alpha_bar_is_the_float32_cumprod_of_linear_betas(schedule):
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float32)
    assert torch.equal(schedule.alpha_bar, torch.cumprod(1 - betas, 0))
    assert schedule.alpha_bar.dtype == torch.float32
    assert schedule.abar(0) == pytest.approx(1 - 1e-4, rel=1e-6)
    assert (schedule.alpha_bar[1:] < schedule.alpha_bar[:-1]).all()
    assert schedule.abar(999) == pytest.approx(4.04e-5, rel=0.02)  # the known DDPM value


def test_sigma_is_the_equivalent_noise_level(schedule):
    for t in (0, 250, 999):
        ab = schedule.abar(t)
        assert schedule.sigma(t) ** 2 == pytest.approx((1 - ab) / ab, rel=1e-12)
    ts = torch.tensor([0, 250, 999])
    assert torch.allclose(schedule.sigma(ts), torch.tensor([schedule.sigma(t) for t in (0, 250, 999)], dtype=torch.float64))


def test_add_noise_matches_the_formula_for_int_and_tensor_t(schedule):
    x0, eps = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    ab = schedule.abar(300)
    assert torch.allclose(schedule.add_noise(x0, 300, eps), ab**0.5 * x0 + (1 - ab) ** 0.5 * eps)
    t = torch.tensor([0, 300, 999])
    out = schedule.add_noise(x0, t, eps)
    for k in range(3):
        assert torch.allclose(out[k], schedule.add_noise(x0[k : k + 1], int(t[k]), eps[k : k + 1])[0], atol=1e-6)


def test_ddim_timesteps(schedule):
    assert schedule.ddim_timesteps(10) == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert schedule.ddim_timesteps(10, "trailing") == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert schedule.ddim_timesteps(1000) == list(range(999, -1, -1))


@pytest.mark.parametrize("bad", [-1, 1000, 2.5, "3", None])
def test_timestep_out_of_range_is_rejected(schedule, bad):
    with pytest.raises(ValueError, match="t must"):
        schedule.abar(bad)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="beta_start"):
        DDPMSchedule(beta_start=0.1, beta_end=0.01)
    with pytest.raises(ValueError, match="num_steps"):
        DDPMSchedule(num_steps=1)
    with pytest.raises(ValueError, match="spacing"):
        DDPMSchedule().ddim_timesteps(10, "middle")
    with pytest.raises(ValueError, match="num_steps"):
        DDPMSchedule().ddim_timesteps(0)
