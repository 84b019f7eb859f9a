"""The UNet baseline: epsilon -> x0 conversion, checkpoints, resumable training, sensitivity fields."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from locality_lib import DDPMSchedule, WienerDenoiser, load_dataset
from locality_lib.sensitivity import pixel_indices, sensitivity_field, wiener_sensitivity_field
from locality_lib.train import train_unet
from locality_lib.epsilon import UNetDenoiser, save_checkpoint
from locality_lib.unet import UNet, UNetConfig

TINY = UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, groups=4, dropout=0.1)
RUN = dict(config=TINY, n_train=96, batch_size=32, warmup_steps=2, threads=1, progress=False)  # 3 steps per epoch


def abar(t):
    """abar_t read straight from the schedule's table (the schedule itself is tested elsewhere)."""
    return float(DDPMSchedule().alpha_bar[t])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An uninterrupted 2-epoch run (6 steps): ``(state path, published checkpoint path)``."""
    d = tmp_path_factory.mktemp("run")
    train_unet("mnist", 2, d / "state.pt", d / "tiny.pt", **RUN)
    return d / "state.pt", d / "tiny.pt"


class OracleNet(UNet):
    """A UNet whose 'prediction' is a fixed tensor: the true noise."""

    def __init__(self, eps):
        super().__init__(TINY)
        self.eps = eps

    def forward(self, x, t):
        return self.eps


def test_default_unet_is_small_and_shape_preserving():
    net = UNet()
    assert 1_000_000 <= net.num_parameters() <= 1_500_000
    x = torch.randn(2, 1, 28, 28)
    assert net(x, torch.tensor([0, 999])).shape == x.shape


@pytest.mark.parametrize("t", [0, 250, 999])
def test_eps_to_x0_with_the_true_noise_recovers_x0(t):
    g = torch.Generator().manual_seed(t)
    x0, eps = torch.rand(3, 1, 28, 28, generator=g) * 2 - 1, torch.randn(3, 1, 28, 28, generator=g)
    ab = abar(t)
    x_t = (ab**0.5 * x0.double() + (1 - ab) ** 0.5 * eps.double())
    den = UNetDenoiser(OracleNet(eps.double()).double(), DDPMSchedule())
    torch.testing.assert_close(den(x_t, t), x0.double(), atol=1e-9 / ab**0.5, rtol=0)


def test_eps_to_x0_matches_hand_formula_for_a_real_net():
    torch.manual_seed(0)
    net = UNet(TINY)
    for p in net.parameters():  # leave the zero-initialized identity start
        p.data.normal_(0, 0.2)
    den = UNetDenoiser(net)
    x_t, t = torch.randn(4, 1, 28, 28), 400
    with torch.no_grad():
        eps = net(x_t, torch.full((4,), t))
        expected = (x_t - (1 - abar(t)) ** 0.5 * eps) / abar(t) ** 0.5
        torch.testing.assert_close(den(x_t, t), expected, rtol=1e-5, atol=1e-5)
        # a [B] tensor of timesteps gives the per-image answers
        ts = torch.tensor([10, 400, 10, 900])
        mixed = den(x_t, ts)
        for b, tb in enumerate(ts.tolist()):
            torch.testing.assert_close(mixed[b : b + 1], den(x_t[b : b + 1], tb))
    assert not net.training  # dropout off inside the denoiser


@pytest.mark.parametrize("t", [0, 500, 999])
def test_prior_skip_with_a_silent_network_is_the_unit_gaussian_posterior_mean(t):
    """eps = sqrt(1 - abar) x_t + F; with F = 0 the x0-estimate is E[x0 | x_t] = sqrt(abar) x_t for x0 ~ N(0, I)."""
    x_t = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    for skip, expected in ((True, abar(t) ** 0.5 * x_t), (False, x_t / abar(t) ** 0.5)):
        net = UNet(UNetConfig(**dict(vars(TINY), prior_skip=skip))).double()
        torch.nn.init.zeros_(net.tail[-1].weight)
        torch.nn.init.zeros_(net.tail[-1].bias)
        with torch.no_grad():
            torch.testing.assert_close(UNetDenoiser(net)(x_t, t), expected, rtol=1e-4, atol=1e-4)  # float32 scale
    assert "prior_scale" not in net.state_dict()  # derived from the schedule, not stored in checkpoints


def test_checkpoint_round_trip_gives_identical_outputs(trained, tmp_path):
    state_path, ckpt = trained
    den = UNetDenoiser.from_checkpoint(ckpt, dataset="mnist")
    meta = den.meta
    assert meta["dataset"] == "mnist" and meta["steps"] == 6 and meta["epochs"] == 2.0
    assert meta["num_parameters"] == den.net.num_parameters() and meta["seed"] == 0
    assert set(meta) >= {"final_loss", "train_seconds", "schedule", "n_train", "batch_size"}
    state = torch.load(state_path, weights_only=True)
    reference = UNet(TINY)
    reference.load_state_dict(state["ema"])  # the EMA weights, not the raw ones
    assert not all(torch.equal(state["ema"][k], state["model"][k]) for k in state["ema"])
    ref_den = UNetDenoiser(reference)
    again = tmp_path / "again.pt"
    save_checkpoint(again, den.net, den.net.state_dict(), meta)
    x_t = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        out = den(x_t, 300)
        assert torch.equal(out, ref_den(x_t, 300))
        assert torch.equal(out, UNetDenoiser.from_checkpoint(again)(x_t, 300))


def test_resume_after_interruption_matches_uninterrupted_run(trained, tmp_path):
    state_path, _ = trained
    out = tmp_path / "state.pt"
    first = train_unet("mnist", 2, out, **RUN, stop_after_steps=4)  # stops mid-epoch 2
    assert first["steps"] == 4 and first["epochs"] == pytest.approx(4 / 3, abs=1e-3)
    train_unet("mnist", 2, out, resume=True, **RUN)
    a, b = torch.load(state_path, weights_only=True), torch.load(out, weights_only=True)
    assert b["step"] == a["step"] == 6 and b["losses"] == a["losses"]
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])


def test_fit_minutes_shortens_the_schedule_and_keeps_the_warm_up(tmp_path):
    fit = dict(RUN, warmup_steps=8)  # timed between steps 2 and 4
    meta = train_unet("mnist", 10**6, tmp_path / "fit.pt", fit_minutes=0.01, max_minutes=0.5, **fit)  # cap if broken
    assert 1 <= meta["planned_epochs"] < 10**6 and meta["epochs"] == meta["planned_epochs"]
    a = torch.load(tmp_path / "fit.pt", weights_only=True)
    assert a["step"] == 3 * meta["planned_epochs"]
    # up to the timing the learning rate is the warm-up's, so the weights equal a plain run's
    train_unet("mnist", 10**6, tmp_path / "a.pt", fit_minutes=10.0, stop_after_steps=4, **fit)
    train_unet("mnist", 7, tmp_path / "b.pt", stop_after_steps=4, **fit)
    a, b = torch.load(tmp_path / "a.pt", weights_only=True), torch.load(tmp_path / "b.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    with pytest.raises(ValueError, match="warmup_steps >= 8"):
        train_unet("mnist", 2, tmp_path / "c.pt", fit_minutes=1.0, **RUN)
    with pytest.raises(ValueError, match="planned_epochs"):
        train_unet("mnist", 2, tmp_path / "fit.pt", resume=True, fit_minutes=1.0, **fit)


def test_train_gpu_splits_a_state_into_pieces_and_joins_them_back(tmp_path):
    """tools/train_gpu.py brings states back from a GPU machine in pieces and resumes from them."""
    spec = importlib.util.spec_from_file_location("train_gpu", Path(__file__).parents[1] / "tools" / "train_gpu.py")
    tg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tg)
    state, out, dest = tmp_path / "mnist_state.pt", tmp_path / "out", tmp_path / "dest"
    out.mkdir(), dest.mkdir()
    state.write_bytes(np.random.default_rng(0).bytes(2500))
    parts = tg.split_file(state, out, mb=0.001)
    assert [q.name for q in parts] == [f"mnist_state.pt.part00{i}" for i in range(3)]
    assert [q.stat().st_size for q in parts] == [1000, 1000, 500]
    assert tg.join_state(out, dest / "mnist_state.pt") and (dest / "mnist_state.pt").read_bytes() == state.read_bytes()
    assert not tg.join_state(out, dest / "fashion_mnist_state.pt")  # nothing to resume from


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where no GPU is present")
def test_training_on_a_missing_gpu_says_so(tmp_path):
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        train_unet("mnist", 1, tmp_path / "s.pt", device="cuda", **RUN)


def test_resume_refuses_different_settings(trained):
    state_path, _ = trained
    with pytest.raises(ValueError, match="settings differ"):
        train_unet("mnist", 3, state_path, resume=True, **dict(RUN, batch_size=16))


def test_checkpoint_errors_name_the_file(trained, tmp_path):
    _, ckpt = trained
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        UNetDenoiser.from_checkpoint(missing)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:2000])
    with pytest.raises(ValueError, match="truncated.pt.*truncated"):
        UNetDenoiser.from_checkpoint(truncated)
    with pytest.raises(ValueError, match="trained on 'mnist', not on 'fashion_mnist'"):
        UNetDenoiser.from_checkpoint(ckpt, dataset="fashion_mnist")
    bad = torch.load(ckpt, weights_only=True)
    bad["config"]["base_channels"] = 16
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt.*do not match"):
        UNetDenoiser.from_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a locality UNet checkpoint"):
        UNetDenoiser.from_checkpoint(trained[0])  # a training state, not a published checkpoint
    with pytest.raises(ValueError, match="no pretrained UNet named 'cifar10'"):
        UNetDenoiser.from_pretrained("cifar10")
    den = UNetDenoiser.from_checkpoint(ckpt)
    with pytest.raises(ValueError, match=r"\(1, 32, 32\).*\(1, 28, 28\)"):
        den(torch.randn(2, 1, 32, 32), 10)
    with pytest.raises(ValueError, match="t must lie in"):
        den(torch.randn(2, 1, 28, 28), 1000)


def test_pixel_indices_accept_flat_and_tuples_and_reject_out_of_range():
    shape = (2, 5, 7)
    assert pixel_indices([(1, 2, 3), 4], shape).tolist() == [(1 * 5 + 2) * 7 + 3, 4]
    assert pixel_indices(torch.tensor([0, 69]), shape).tolist() == [0, 69]
    for bad in ([70], [(0, 5, 0)], [(0, 1)], [], [1.5], torch.tensor([[1]])):
        with pytest.raises(ValueError):
            pixel_indices(bad, shape)


def test_sensitivity_field_of_wiener_equals_its_jacobian_rows():
    train = load_dataset("mnist", "train", n=500, seed=1)
    wiener = WienerDenoiser(train, DDPMSchedule())
    x_t = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    pixels = [(0, 14, 14), (0, 5, 20), 28 * 20 + 9]
    for t in (100, 600):
        field = sensitivity_field(wiener, x_t, t, pixels)
        assert field.shape == (2, 3, 1, 28, 28) and field.dtype == torch.float64
        closed = wiener_sensitivity_field(wiener, t, pixels)
        jac = wiener.jacobian(t)
        torch.testing.assert_close(closed.reshape(3, -1), jac[[406, 160, 569]], rtol=0, atol=0)
        for b in range(2):
            torch.testing.assert_close(field[b], closed, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        sensitivity_field(wiener, x_t, 100, [784])


def test_sensitivity_field_of_unet_matches_finite_differences(trained):
    den = UNetDenoiser.from_checkpoint(trained[1])
    den.net.double()
    x_t = torch.randn(2, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    t, pixels, h = 300, [(0, 10, 12), 500], 1e-5
    field = sensitivity_field(den, x_t, t, pixels)  # [2, 2, 1, 28, 28]
    flat = pixel_indices(pixels, (1, 28, 28))
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for j in rng.choice(784, size=6, replace=False).tolist() + [flat[0].item()]:
            e = torch.zeros(784, dtype=torch.float64)
            e[j] = h
            e = e.reshape(1, 1, 28, 28)
            fd = (den(x_t + e, t) - den(x_t - e, t)).reshape(2, -1)[:, flat] / (2 * h)  # [B, P]
            torch.testing.assert_close(field.reshape(2, 2, -1)[:, :, j], fd, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="not differentiable"):
        sensitivity_field(lambda x, t: x.detach() * 2, x_t, t, pixels)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_shipped_checkpoint_loads_and_beats_the_wiener_filter(name):
    den = UNetDenoiser.from_pretrained(name)
    assert den.meta["dataset"] == name and den.meta["n_train"] == 60000
    assert den.net.num_parameters() == den.meta["num_parameters"] == UNet().num_parameters()
    schedule = DDPMSchedule()
    wiener = WienerDenoiser(load_dataset(name, "train", n=5000, seed=0), schedule)
    test = load_dataset(name, "test", n=32, seed=0)
    x_t = schedule.add_noise(test, 300, torch.randn(test.shape, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        err_unet = (den(x_t, 300) - test).pow(2).mean()
    err_wiener = (wiener(x_t, 300) - test).pow(2).mean()
    assert err_unet < 0.8 * err_wiener
