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
    start = {"x0": images} if protocol == "forward" else {"x_T": images}
    cmp = compare_models({"self": wiener, "doubled": doubled_deviation(wiener)}, wiener, schedule=SCHEDULE,
                         timesteps=TS if protocol == "forward" else None, protocol=protocol, **start)
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
    # the table: winners in bold, rows renamed by labels, the order kept
    lines = cmp.table("r2", labels={"self": "Wiener (itself)"}).splitlines()
    assert lines[2].startswith("| Wiener (itself) | **1.000** |") and lines[3].startswith("| doubled | ")
    assert "**" not in lines[3] and len(lines) == 4


def test_forward_inputs_share_one_noise(wiener, x0):
    cmp = compare_models({"w": wiener}, wiener, x0, SCHEDULE, TS, seed=3)
    ab = SCHEDULE.alpha_bar.double()[TS].view(-1, 1, 1, 1, 1)
    eps = (cmp.inputs.double() - ab.sqrt() * x0.double()) / (1 - ab).sqrt()  # [T, B, C, H, W]
    torch.testing.assert_close(eps[1:], eps[:1].expand_as(eps[1:]), atol=1e-4, rtol=0)
    assert cmp.timesteps == TS


def test_trajectory_follows_reference_ddim(wiener, x0):
    x_T = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    cmp = compare_models({"w": wiener}, wiener, schedule=SCHEDULE, protocol="trajectory", num_steps=5, x_T=x_T)
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


# --- the paper's protocol: final samples from shared initial noise -------------------------------------------

from locality_lib.compare import bootstrap_interval, paper_noise, paper_protocol, summarize  # noqa: E402
from locality_lib.metrics import r2_per_image  # noqa: E402


def test_r2_per_image_is_the_paper_formula():
    g = torch.Generator().manual_seed(0)
    p, y = torch.randn(3, 1, 4, 5, generator=g), torch.randn(3, 1, 4, 5, generator=g)
    D = 20
    for unbiased, dof in ((True, D - 1), (False, D)):
        yf, pf = y.reshape(3, -1).double(), p.reshape(3, -1).double()
        var = ((yf - yf.mean(1, keepdim=True)) ** 2).sum(1) / dof
        want = 1 - ((pf - yf) ** 2).sum(1) / (D * var)
        torch.testing.assert_close(r2_per_image(p, y, unbiased=unbiased), want)


def test_paper_noise_names_one_noise_per_seed():
    a, b = paper_noise(4, (1, 3, 3)), paper_noise([2, 7], (1, 3, 3))
    torch.testing.assert_close(b[0], a[2])
    assert not torch.equal(b[1], a[1])
    with pytest.raises(ValueError, match="distinct"):
        paper_noise([1, 1], (1, 3, 3))


def test_paper_protocol_self_and_batches(wiener):
    shrunk = lambda x, t: 0.5 * wiener(x, t)  # noqa: E731
    res = paper_protocol({"self": wiener, "shrunk": shrunk}, wiener, SCHEDULE, (1, 6, 6), seeds=6, num_steps=5,
                         batch_size=4)
    # the reference against itself: the same trajectory, r2 = 1 everywhere, an interval of width 0
    np.testing.assert_array_equal(res.final_r2["self"], np.ones(6))
    np.testing.assert_array_equal(res.x0_r2["self"], np.ones((5, 6)))
    s = res.summary("self")
    assert s["mean"] == s["median"] == s["lo"] == s["hi"] == 1.0 and s["n"] == 6
    # when the model is the reference, the reference applied to the model's x_t is the x0 curve
    np.testing.assert_array_equal(res.reference_on_model_r2["self"], res.x0_r2["self"])
    # the final r2 is the paper's formula on the returned samples; batching does not change anything
    want = r2_per_image(res.samples["shrunk"], res.samples["reference"], unbiased=True).numpy()
    np.testing.assert_allclose(res.final_r2["shrunk"], want, rtol=1e-6)
    assert (res.final_r2["shrunk"] < 1).all()
    one = paper_protocol({"shrunk": shrunk}, wiener, SCHEDULE, (1, 6, 6), seeds=6, num_steps=5, batch_size=6)
    np.testing.assert_allclose(one.final_r2["shrunk"], res.final_r2["shrunk"], rtol=1e-6)
    # the first step starts from the same noise: both curves agree there
    np.testing.assert_allclose(res.x0_r2["shrunk"][0], res.reference_on_model_r2["shrunk"][0], rtol=1e-6)
    # paired difference over the same seeds: a model minus itself is exactly 0, and the mean is the difference
    assert res.difference("self", "self")["hi"] == 0.0
    d = res.difference("self", "shrunk")
    assert abs(d["mean"] - (1 - res.final_r2["shrunk"].mean())) < 1e-12 and d["lo"] < d["mean"] < d["hi"]
    assert res.timesteps == SCHEDULE.ddim_timesteps(5)


def test_bootstrap_interval_contains_mean_and_shrinks():
    v = np.random.default_rng(1).normal(0.5, 0.2, 512)
    lo, hi = bootstrap_interval(v)
    assert lo < v.mean() < hi
    w32 = np.subtract(*bootstrap_interval(v[:32])[::-1])
    w512 = hi - lo
    # the width scales like 1 / sqrt(S): 16 times the seeds, about a quarter of the width
    assert 0.15 < w512 / w32 < 0.4
    flat = summarize(np.full(10, 0.3))
    assert flat["hi"] - flat["lo"] < 1e-15 and abs(flat["lo"] - 0.3) < 1e-15
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(v, level=95)


def test_paper_protocol_bad_input(wiener):
    with pytest.raises(ValueError, match="reference"):
        paper_protocol({"reference": wiener}, wiener, SCHEDULE, (1, 6, 6), seeds=2)
    with pytest.raises(ValueError, match="shape"):
        paper_protocol({"w": wiener}, wiener, SCHEDULE, (6, 6), seeds=2)


def test_shipped_results_are_the_papers_protocol():
    """The file chapter 7 reads: every model's seeds are test seeds, its curves have one value per DDIM step."""
    from locality_lib.compare import load_paper_results

    for name in ("mnist", "fashion_mnist"):
        res, info = load_paper_results(name)
        assert res.timesteps == SCHEDULE.ddim_timesteps(info["config"]["num_steps"])
        for m, seeds in res.seeds.items():
            assert len(set(seeds)) == len(seeds) and set(seeds) <= set(range(info["config"]["seeds"]))
            assert res.x0_r2[m].shape == res.reference_on_model_r2[m].shape == (len(res.timesteps), len(seeds))
            assert res.final_r2[m].shape == (len(seeds),) and (res.final_r2[m] <= 1).all()


def test_one_name_per_protocol(wiener, x0):
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="x_T"):
        compare_models({"w": wiener}, wiener, x0, SCHEDULE, protocol="trajectory")  # clean images as start noise
    with pytest.raises(ValueError, match="x0"):
        compare_models({"w": wiener}, wiener, schedule=SCHEDULE, timesteps=TS, x_T=noise)
    with pytest.raises(TypeError, match="images"):
        compare_models({"w": wiener}, wiener, schedule=SCHEDULE, protocol="trajectory", images=noise)  # no alias


def test_referee_scores_stored_samples(wiener, tmp_path):
    """Samples stored by the protocol, scored again: the first referee reproduces the protocol's r2, a second
    referee gives the paper's formula against its own samples, and its own samples score exactly 1."""
    import json

    from locality_lib.compare import load_paper_samples, save_paper_samples, referee_scores

    shrunk = lambda x, t: 0.5 * wiener(x, t)  # noqa: E731
    res = paper_protocol({"shrunk": shrunk, "self": wiener}, wiener, SCHEDULE, (1, 6, 6), seeds=6, num_steps=5)
    (tmp_path / "paper_protocol_toy.json").write_text(json.dumps({"config": {"num_steps": 5}}))
    # stored in two pieces, out of order, one seed written twice: the file keeps one sample per seed
    save_paper_samples("toy", [3, 4, 5], {m: res.samples[m][3:] for m in ("shrunk", "reference")}, root=tmp_path)
    save_paper_samples("toy", [0, 1, 2, 3], {m: res.samples[m][:4] for m in ("shrunk", "reference")}, root=tmp_path)
    for m in ("shrunk", "reference"):  # both names of each write, one sample per seed
        seeds, x = load_paper_samples("toy", root=tmp_path)[m]
        assert sorted(seeds) == list(range(6)) and torch.equal(x[np.argsort(seeds)], res.samples[m])
    same = referee_scores("toy", wiener, SCHEDULE, batch_size=4, root=tmp_path)
    got = dict(zip(same.seeds["shrunk"], same.final_r2["shrunk"]))
    np.testing.assert_allclose([got[s] for s in range(6)], res.final_r2["shrunk"], rtol=1e-6)
    np.testing.assert_array_equal(same.final_r2["unet"], np.ones(6))  # the first referee's samples: "unet"
    other = lambda x, t: 0.8 * wiener(x, t)  # noqa: E731
    new = referee_scores("toy", other, SCHEDULE, root=tmp_path)
    ref = ddim_sample(other, paper_noise(range(6), (1, 6, 6)), SCHEDULE, 5).images
    want = r2_per_image(res.samples["reference"], ref, unbiased=True).numpy()
    got = dict(zip(new.seeds["unet"], new.final_r2["unet"]))  # stored in the order the writes left
    np.testing.assert_allclose([got[s] for s in range(6)], want, rtol=1e-6)
    assert (new.final_r2["unet"] < 1).all() and new.summary("shrunk")["n"] == 6
    # extra samples are scored beside the stored ones, by the same formulas
    half = res.samples["reference"][:3] * 0.9
    ext = referee_scores("toy", other, SCHEDULE, root=tmp_path, extra={"net": ([2, 0, 1], half)})
    for k, s in enumerate([2, 0, 1]):
        y, x = ref[s].flatten().double(), half[k].flatten().double()
        assert ext.final_r2["net"][k] == pytest.approx(1 - ((x - y) ** 2).sum().item() / (y.numel() * y.var().item()),
                                                       rel=1e-5)
        assert ext.pearson["net"][k] == pytest.approx(np.corrcoef(x.numpy(), y.numpy())[0, 1], rel=1e-5)
    # the referee's samples given instead of the referee, in another seed order: the same scores
    order = [5, 3, 1, 0, 2, 4, 7]
    given = referee_scores("toy", (order, torch.cat([ref, ref[:2]])[order]), SCHEDULE, root=tmp_path)
    for m in ("unet", "shrunk"):
        np.testing.assert_allclose(given.final_r2[m], new.final_r2[m], rtol=1e-6)
    with pytest.raises(ValueError, match="lack 1 seeds"):
        referee_scores("toy", ([0, 1, 2, 3, 4], ref[:5]), SCHEDULE, root=tmp_path)
    with pytest.raises(ValueError, match="samples"):
        referee_scores("toy", (list(range(6)), ref[:, 0]), SCHEDULE, root=tmp_path)
    with pytest.raises(ValueError, match="name of a stored one"):
        referee_scores("toy", other, SCHEDULE, root=tmp_path, extra={"unet": ([0], half[:1])})
    with pytest.raises(FileNotFoundError, match="paper_protocol.py"):
        referee_scores("other", wiener, SCHEDULE, root=tmp_path)
    with pytest.raises(ValueError, match="len"):
        save_paper_samples("toy", [0, 1], {"shrunk": res.samples["shrunk"]}, root=tmp_path)


def test_paper_pearson_matches_a_seed_by_seed_loop(wiener, tmp_path):
    """Pearson r of stored final samples, against a plain loop over seeds with numpy's corrcoef; seeds that
    the reference lacks are left out, stored out of order they are matched by seed."""
    from locality_lib.compare import paper_pearson, save_paper_samples

    shrunk = lambda x, t: 0.5 * wiener(x, t) + 0.1  # noqa: E731  (Pearson r ignores scale and offset)
    noisy = lambda x, t: wiener(x, t) + 0.3 * torch.sin(7 * x)  # noqa: E731
    res = paper_protocol({"shrunk": shrunk, "noisy": noisy}, wiener, SCHEDULE, (1, 6, 6), seeds=5, num_steps=4)
    save_paper_samples("toy", [4, 2, 0], {m: res.samples[m][[4, 2, 0]] for m in ("noisy", "reference")}, root=tmp_path)
    save_paper_samples("toy", [1, 3], {"noisy": res.samples["noisy"][[1, 3]]}, root=tmp_path)  # no reference
    save_paper_samples("toy", [0, 1], {"shrunk": res.samples["shrunk"][:2]}, root=tmp_path)
    got = paper_pearson("toy", root=tmp_path)
    assert sorted(got) == ["noisy", "shrunk"]
    for name, want_seeds in (("noisy", [4, 2, 0]), ("shrunk", [0])):
        seeds, r = got[name]
        assert sorted(seeds) == sorted(want_seeds)
        for s, v in zip(seeds, r):
            a = res.samples[name][s].flatten().double().numpy()
            b = res.samples["reference"][s].flatten().double().numpy()
            assert v == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    shrunk_r = got["shrunk"][1][0]
    assert shrunk_r > 0.99 and res.final_r2["shrunk"][0] < 0.9  # r ignores most of the contrast that r2 counts


def test_two_way_bootstrap_equals_a_loop_and_covers_both_factors():
    """summarize_two_way against a plain loop over the same draws (rows, then columns, of one generator), and
    its interval widens when the pixels (columns) differ, not only the inputs (rows)."""
    from locality_lib.compare import summarize_two_way

    rng = np.random.default_rng(3)
    v = rng.normal(0, 1, (7, 5))
    n_boot = 200
    res = summarize_two_way(v, n_boot=n_boot, seed=4)
    g = np.random.default_rng(4)
    rows, cols = g.integers(0, 7, (n_boot, 7)), g.integers(0, 5, (n_boot, 5))
    means = []
    for k in range(n_boot):
        total = 0.0
        for r in rows[k]:
            for c in cols[k]:
                total += v[r, c]
        means.append(total / v.size)
    lo, hi = np.quantile(means, [0.025, 0.975])
    assert res["lo"] == pytest.approx(lo, abs=1e-12) and res["hi"] == pytest.approx(hi, abs=1e-12)
    assert res["mean"] == pytest.approx(v.mean()) and res["n"] == 35
    # rows identical, columns differ: a one-way bootstrap over rows would give a zero-width interval
    cols_only = np.tile(rng.normal(0, 1, 16), (64, 1))
    c = summarize_two_way(cols_only)
    assert c["hi"] - c["lo"] > 0.5 * np.subtract(*bootstrap_interval(cols_only[0])[::-1])
    with pytest.raises(ValueError, match=r"\[B, P\]"):
        summarize_two_way(v[0])
    with pytest.raises(ValueError, match="non-finite"):
        summarize_two_way(np.full((3, 3), np.inf))


def test_network_samples_equal_one_seed_at_a_time(wiener):
    """network_samples in batches equals sampling each seed alone from its own paper_noise."""
    from locality_lib.compare import network_samples

    seeds = [5, 0, 3]
    got = network_samples(wiener, seeds, (1, 6, 6), SCHEDULE, num_steps=4, batch_size=2)
    for k, s in enumerate(seeds):
        one = ddim_sample(wiener, paper_noise([s], (1, 6, 6)), SCHEDULE, 4).images[0]
        torch.testing.assert_close(got[k], one.float(), rtol=1e-5, atol=1e-6)


def test_shipped_referee_scores_agree_with_the_protocol():
    """``benchmarks/referee_scores.py``'s file: the UNet's verdicts equal the protocol's own r2 (the same samples,
    the same formula), every network judges every other one, and no referee judges itself."""
    import json

    from locality_lib.compare import RESULTS_DIR, load_paper_results

    d = json.loads((RESULTS_DIR / "referees_mnist.json").read_text())
    res, info = load_paper_results("mnist")
    assert d["seeds"] == sorted(d["seeds"]) and set(d["seeds"]) == set(range(info["config"]["seeds"]))
    for m, seeds in res.seeds.items():
        got = dict(zip(d["seeds"], d["final_r2"]["UNet"][m]))
        np.testing.assert_allclose([got[s] for s in seeds], res.final_r2[m], rtol=1e-5, atol=1e-6)
    nets = set(d["referees"])
    assert nets == {"UNet", "DiT", "CNN"}
    for k in nets:
        assert k not in d["final_r2"][k] and nets - {k} <= set(d["final_r2"][k])
        assert set(d["pearson"][k]) == set(d["final_r2"][k])
        for m, r in d["pearson"][k].items():
            assert len(r) == len(d["seeds"]) and all(v is None or -1 - 1e-9 <= v <= 1 + 1e-9 for v in r)


def test_progress_bars_name_the_network():
    """``denoiser_label``: a network's checkpoint name, ``on_grid``'s "<name> on the grid", else the class."""
    import functools

    from locality_lib import on_grid
    from locality_lib.base import denoiser_label
    from locality_lib.data import shuffle_pixels

    den = WienerDenoiser(load_dataset("gaussian_field", size=6, num=50), SCHEDULE)
    assert denoiser_label(den) == "WienerDenoiser"
    den.meta = {"name": "toy/net"}
    den.transform = functools.partial(shuffle_pixels, seed=0)
    assert denoiser_label(den) == "toy/net" and denoiser_label(on_grid(den)) == "toy/net on the grid"
