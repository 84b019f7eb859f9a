"""The DiT epsilon network: position embedding, adaLN-Zero start, patch layout, checkpoints, training."""
import pytest
import torch

from locality_lib import DDPMSchedule, EpsilonDenoiser, UNetDenoiser
from locality_lib.dit import DiT, DiTConfig, sincos_position_embedding
from locality_lib.epsilon import save_checkpoint
from locality_lib.train import train

TINY = DiTConfig(patch_size=7, width=16, depth=1, heads=2, mlp_ratio=2)


def randomize(net, std=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    for p in net.parameters():
        p.data = torch.randn(p.shape, generator=g) * std
    return net


def test_default_dit_is_small_and_shape_preserving():
    net = DiT()
    assert 500_000 <= net.num_parameters() <= 1_500_000
    assert net(torch.randn(2, 1, 28, 28), torch.tensor([0, 999])).shape == (2, 1, 28, 28)


def test_position_embedding_is_the_sin_cos_formula_and_tells_tokens_apart():
    grid, dim = 7, 16
    pe = sincos_position_embedding(grid, dim).double()  # [49, 16]
    q, k = dim // 4, 1
    w = 10000 ** (-k / q)
    r, c = 3, 5  # token r * grid + c
    assert pe[r * grid + c, k] == pytest.approx(torch.sin(torch.tensor(r * w)).item(), abs=1e-6)
    assert pe[r * grid + c, q + k] == pytest.approx(torch.cos(torch.tensor(r * w)).item(), abs=1e-6)
    assert pe[r * grid + c, 2 * q + k] == pytest.approx(torch.sin(torch.tensor(c * w)).item(), abs=1e-6)
    # the first half depends on the row only, the second on the column only
    pe3 = pe.reshape(grid, grid, dim)
    assert torch.equal(pe3[:, :1, : dim // 2].expand(grid, grid, dim // 2), pe3[..., : dim // 2])
    assert torch.equal(pe3[:1, :, dim // 2 :].expand(grid, grid, dim // 2), pe3[..., dim // 2 :])
    assert torch.cdist(pe, pe).add(torch.eye(grid * grid)).min() > 0.1  # all 49 positions distinct
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_position_embedding(7, 18)


@pytest.mark.parametrize("t", [0, 500, 999])
def test_fresh_dit_predicts_zero_noise_so_the_denoiser_rescales(t):
    """adaLN-Zero and a zero output layer: eps_theta = 0 at initialization, so x0_hat = x_t / sqrt(abar_t)."""
    net = DiT(TINY)
    x_t = torch.randn(3, 1, 28, 28)
    abar = float(DDPMSchedule().alpha_bar[t])
    with torch.no_grad():
        assert torch.equal(net(x_t, torch.full((3,), t)), torch.zeros_like(x_t))
        torch.testing.assert_close(EpsilonDenoiser(net)(x_t, t), x_t / abar**0.5)


def test_tokens_interact_only_through_the_gated_blocks():
    """With the blocks' gates at zero each output patch depends on its own input patch only (the patch
    layout is put back in place); with random gates one pixel reaches every patch."""
    net = randomize(DiT(TINY)).double()
    for block in net.blocks:
        torch.nn.init.zeros_(block.ada.weight)
        torch.nn.init.zeros_(block.ada.bias)
    x = torch.randn(1, 1, 28, 28, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([300])
    out = net(x, t)
    (g,) = torch.autograd.grad(out[0, 0, 9, 16], x)  # patch (1, 2) of the 4 x 4 grid of 7 x 7 patches
    support, own = g[0, 0].abs() > 0, torch.zeros(28, 28, dtype=torch.bool)
    own[7:14, 14:21] = True
    assert support[own].any() and not support[~own].any()
    net = randomize(DiT(TINY), seed=1).double()
    out = net(x, t)
    (g,) = torch.autograd.grad(out[0, 0, 9, 16], x)
    assert (g[0, 0].reshape(4, 7, 4, 7).abs().sum((1, 3)) > 0).all()  # every patch reaches the output


def test_config_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        DiTConfig(patch_size=5)
    with pytest.raises(ValueError, match="divisible by 4 and by heads"):
        DiTConfig(width=30, heads=3)
    with pytest.raises(ValueError, match="depth must be a positive int"):
        DiTConfig(depth=0)


def test_checkpoint_round_trip_and_architecture_check(tmp_path):
    net = randomize(DiT(TINY))
    meta = {"dataset": "mnist", "transform": {"name": "w", "amplitude": 2.0, "seed": 0}}
    save_checkpoint(tmp_path / "d.pt", net, net.state_dict(), meta)
    den = EpsilonDenoiser.from_checkpoint(tmp_path / "d.pt")
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(den(x, 400), EpsilonDenoiser(net)(x, 400))
    assert den.dataset == "mnist" and den.transform.keywords == {"amplitude": 2.0, "seed": 0}
    assert den.meta["num_parameters"] == net.num_parameters()
    with pytest.raises(ValueError, match="holds a 'dit' network, not a 'unet' one"):
        UNetDenoiser.from_checkpoint(tmp_path / "d.pt")


def test_the_shared_training_loop_trains_and_resumes_a_dit(tmp_path):
    run = dict(config=TINY, n_train=64, batch_size=16, warmup_steps=2, threads=1, progress=False,
               transform={"name": "shuffled", "seed": 0})
    meta = train("dit", "mnist", 2, tmp_path / "a.pt", tmp_path / "a_pub.pt", **run)  # 8 steps
    assert meta["arch"] == "dit" and meta["steps"] == 8
    train("dit", "mnist", 2, tmp_path / "b.pt", **run, stop_after_steps=5)
    train("dit", "mnist", 2, tmp_path / "b.pt", resume=True, **run)
    a, b = torch.load(tmp_path / "a.pt", weights_only=True), torch.load(tmp_path / "b.pt", weights_only=True)
    assert a["losses"] == b["losses"] and all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert a["losses"][0] > 0.5 and not torch.equal(a["ema"]["out.weight"], torch.zeros_like(a["ema"]["out.weight"]))
    den = EpsilonDenoiser.from_checkpoint(tmp_path / "a_pub.pt")
    assert den.transform.keywords == {"seed": 0} and isinstance(den.net, DiT)
    with pytest.raises(ValueError, match="settings differ"):
        train("dit", "mnist", 2, tmp_path / "b.pt", resume=True, **dict(run, transform=None))


def test_steps_snapshots_and_init_from(tmp_path):
    run = dict(config=TINY, n_train=64, batch_size=16, warmup_steps=2, threads=1, progress=False)  # 4 steps/epoch
    meta = train("dit", "mnist", 1, tmp_path / "s.pt", tmp_path / "s_pub.pt", steps=5, snapshot_every=2,
                 snapshot_dir=tmp_path / "snap", **run)
    assert meta["steps"] == 5 and meta["epochs"] == 1.25  # stops mid-epoch 2, where its schedule ends
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == ["step000002.pt", "step000004.pt"]
    assert EpsilonDenoiser.from_checkpoint(tmp_path / "snap" / "step000004.pt").meta["steps"] == 4
    again = train("dit", "mnist", 1, tmp_path / "s.pt", resume=True, steps=5, **run)  # finished: no more steps
    assert again["steps"] == 5
    # a fine-tune starts from the checkpoint's EMA weights (with a vanishing learning rate it stays there)
    start = EpsilonDenoiser.from_checkpoint(tmp_path / "s_pub.pt").net.state_dict()
    tuned_meta = train("dit", "mnist", 1, tmp_path / "f.pt", init_from=tmp_path / "s_pub.pt", steps=1,
                       **dict(run, lr=1e-12, config=None))
    assert tuned_meta["steps"] == 1 and tuned_meta["total_steps"] == 6  # 5 behind the checkpoint
    tuned = torch.load(tmp_path / "f.pt", weights_only=True)["model"]
    assert all(torch.allclose(tuned[k], start[k], atol=1e-8) for k in start)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        train("dit", "mnist", 1, tmp_path / "g.pt", steps=0, **run)
