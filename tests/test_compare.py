"""compare_models: the reference against itself, a closed-form disagreement, and the two protocols' inputs."""
import numpy as np
import pytest
import torch

from locality_lib import DDPMSchedule, WienerDenoiser, compare_models, ddim_sample, load_dataset
from locality_lib.compare import markdown_table

SCHEDULE = DDPMSchedule()
TS = [100, 500, 900]


@pytest.fixture(scope="module")
def wiener():
    return WienerDenoiser(load_dataset("gaussian_field", size=6, num=400), SCHEDULE)


@pytest.fixture(scope="module")
def x0():
    return load_dataset("gaussian_field", "test", size=6, num=5)


def doubled_deviation(den):
    """``2 ref - mean(ref)`` per image: r2 = 1 - ||ref - mean||^2 / (D Var ref) = 0, Pearson r = 1, mse = mean Var."""
    def model(x, t):
        ref = den(x, t)
        return 2 * ref - ref.mean(dim=(1, 2, 3), keepdim=True)
    return model


@pytest.mark.parametrize("protocol", ["forward", "trajectory"])
def test_closed_forms(wiener, x0, protocol):
    images = x0 if protocol == "forward" else torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    cmp = compare_models({"self": wiener, "doubled": doubled_deviation(wiener)}, wiener, images, SCHEDULE,
                         TS if protocol == "forward" else None, protocol=protocol)
    T = len(cmp.timesteps)
    np.testing.assert_allclose(cmp.metrics["r2"]["self"], np.ones(T), atol=1e-12)
    np.testing.assert_allclose(cmp.metrics["pearson_r"]["self"], np.ones(T), atol=1e-12)
    np.testing.assert_allclose(cmp.metrics["mse"]["self"], np.zeros(T), atol=1e-12)
    # r2 normalizes by the reference's variance: swapping pred and ref would give 0.75, not 0
    np.testing.assert_allclose(cmp.metrics["r2"]["doubled"], np.zeros(T), atol=1e-5)
    np.testing.assert_allclose(cmp.metrics["pearson_r"]["doubled"], np.ones(T), atol=1e-6)
    var = cmp.reference.double().flatten(2).var(dim=2, unbiased=False).mean(1).numpy()  # [T]
    np.testing.assert_allclose(cmp.metrics["mse"]["doubled"], var, rtol=1e-5)
    assert cmp.best("r2") == ["self"] * T and cmp.best("mse") == ["self"] * T
    assert set(cmp.seconds) == {"self", "doubled"} and cmp.predictions["self"].shape == (T, *images.shape)


def test_forward_inputs_share_one_noise(wiener, x0):
    cmp = compare_models({"w": wiener}, wiener, x0, SCHEDULE, TS, seed=3)
    ab = SCHEDULE.alpha_bar.double()[TS].view(-1, 1, 1, 1, 1)
    eps = (cmp.inputs.double() - ab.sqrt() * x0.double()) / (1 - ab).sqrt()  # [T, B, C, H, W]
    torch.testing.assert_close(eps[1:], eps[:1].expand_as(eps[1:]), atol=1e-4, rtol=0)
    assert cmp.timesteps == TS


def test_trajectory_follows_reference_ddim(wiener, x0):
    x_T = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    cmp = compare_models({"w": wiener}, wiener, x_T, SCHEDULE, protocol="trajectory", num_steps=5)
    traj = ddim_sample(wiener, x_T, SCHEDULE, num_steps=5)
    assert cmp.timesteps == traj.timesteps == SCHEDULE.ddim_timesteps(5)
    torch.testing.assert_close(cmp.inputs, traj.xt.float())


def test_bad_input(wiener, x0):
    with pytest.raises(ValueError, match="protocol"):
        compare_models({"w": wiener}, wiener, x0, SCHEDULE, TS, protocol="sideways")
    with pytest.raises(ValueError, match="timesteps"):
        compare_models({"w": wiener}, wiener, x0, SCHEDULE, None)
    with pytest.raises(ValueError, match="models"):
        compare_models({}, wiener, x0, SCHEDULE, TS)
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a", "b"], [["only one"]])
