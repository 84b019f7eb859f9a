import math

import pytest
import torch

from locality_lib import load_dataset


def test_mnist_is_the_real_training_set():
    x = load_dataset("mnist")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    assert ((x.mean() + 1) * 127.5).item() == pytest.approx(33.318, abs=1e-3)  # shared/data README check


def test_fashion_mnist_and_subsets_are_seeded():
    a = load_dataset("fashion_mnist", split="test", n=50, seed=3)
    b = load_dataset("fashion_mnist", split="test", n=50, seed=3)
    c = load_dataset("fashion_mnist", split="test", n=50, seed=4)
    assert a.shape == (50, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)
    full = load_dataset("fashion_mnist", split="test")
    assert full.shape[0] == 10000
    # every subset image is an image of the split
    assert (torch.cdist(a.flatten(1).double(), full.flatten(1).double()).min(1).values < 1e-3).all()  # distinct images differ by >= 2/255


def test_natural_patches_and_faces():
    tr = load_dataset("natural_patches", n=100, num=500)
    te = load_dataset("natural_patches", split="test", num=50)
    assert tr.shape == (100, 3, 32, 32) and te.shape == (50, 3, 32, 32)
    assert tr.min() >= -1 and tr.max() <= 1
    gray = load_dataset("natural_patches", num=20, size=16, grayscale=True)
    assert gray.shape == (20, 1, 16, 16)
    faces = load_dataset("faces")
    assert faces.shape == (80, 1, 25, 25) and load_dataset("faces", split="test").shape == (20, 1, 25, 25)


def test_gaussian_field_has_the_requested_correlation():
    x = load_dataset("gaussian_field", num=4000, size=16, length=2.0, std=0.3)
    assert x.shape == (4000, 1, 16, 16)
    assert x.std().item() == pytest.approx(0.3, rel=0.02)
    corr = (x * x.roll(2, dims=3)).mean() / (x * x).mean()
    assert corr.item() == pytest.approx(math.exp(-(2**2) / (2 * 2.0**2)), abs=0.03)


def test_bad_dataset_requests(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'cifar100'"):
        load_dataset("cifar100")
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist", split="val")
    with pytest.raises(ValueError, match="n must be"):
        load_dataset("faces", n=81)
    with pytest.raises(ValueError, match="takes no options"):
        load_dataset("mnist", size=3)
    with pytest.raises(FileNotFoundError, match="LOCALITY_DATA_DIR") as err:
        load_dataset("mnist", root=tmp_path)
    assert str(tmp_path) in str(err.value)


# -- transforms: the planted W and shuffled pixels ------------------------------------------------------

def _cov(x):
    z = x.flatten(1).double()
    z = z - z.mean(0)
    return z.T @ z / (z.shape[0] - 1)


def test_w_mask_is_a_w_in_the_corner():
    from locality_lib.data import w_mask

    m = w_mask()
    assert m.shape == (1, 28, 28) and m.sum() == 16 and set(m.unique().tolist()) == {0.0, 1.0}
    rows, cols = m[0].nonzero().T
    assert rows.min() == 1 and rows.max() == 5 and cols.min() == 1 and cols.max() == 9
    assert torch.equal(m[0, 1:6, 1:10], m[0, 1:6, 1:10].flip(1))  # symmetric like a W
    assert m[0, 5].sum() == 2 and m[0, 1].sum() == 3  # two bottom tips, three top ends
    with pytest.raises(ValueError, match="does not fit"):
        w_mask(top=24)


def test_plant_pattern_adds_exactly_a_rank_one_block_to_constant_data():
    """On constant images the planted data's covariance is s_a^2 w w^T, s_a^2 the sample variance of the a_i."""
    from locality_lib.data import plant_pattern, w_mask

    x = torch.full((500, 1, 28, 28), -1.0, dtype=torch.float64)
    y = plant_pattern(x, amplitude=2.0, seed=3)
    a = 2.0 * torch.rand(500, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    w = w_mask().flatten().double()
    torch.testing.assert_close(_cov(y), a.var() * torch.outer(w, w), rtol=0, atol=1e-12)
    torch.testing.assert_close(y.mean(0).flatten(), -1 + a.mean() * w, rtol=0, atol=1e-12)


def test_plant_pattern_on_mnist_changes_only_the_w_rows_and_columns():
    from locality_lib.data import plant_pattern, w_mask

    x = load_dataset("mnist", n=20000, seed=0).double()
    y = plant_pattern(x)
    d = _cov(y) - _cov(x)
    on = w_mask().flatten() > 0
    assert d[~on][:, ~on].abs().max() == 0  # pixels off the W: untouched, to the last bit
    block = d[on][:, on]
    # the W block gains Var(a) = 2^2 / 12 plus sampling cross terms (a independent of the digits)
    assert (block - 4 / 12).abs().max() < 0.03
    assert y.min() == -1 and y.max() <= 3 and (y > 1).any(dim=(1, 2, 3)).float().mean() < 0.05


def test_plant_pattern_is_seeded_per_image_and_checks_its_input():
    from locality_lib.data import plant_pattern

    x = load_dataset("mnist", split="test", n=50, seed=2)
    assert torch.equal(plant_pattern(x, seed=1), plant_pattern(x, seed=1))
    assert not torch.equal(plant_pattern(x, seed=1), plant_pattern(x, seed=2))
    assert torch.equal(plant_pattern(x[:7], seed=1), plant_pattern(x, seed=1)[:7])  # image i gets draw i
    with pytest.raises(ValueError, match="amplitude must be positive"):
        plant_pattern(x, amplitude=0.0)
    with pytest.raises(ValueError, match=r"float tensor \[N, C, H, W\]"):
        plant_pattern(x[0])


def test_shuffle_pixels_round_trip_and_is_a_permutation():
    from locality_lib.data import pixel_permutation, shuffle_pixels, unshuffle_pixels

    x = load_dataset("mnist", split="test", n=20, seed=0)
    y = shuffle_pixels(x, seed=5)
    assert torch.equal(unshuffle_pixels(y, seed=5), x) and not torch.equal(y, x)
    assert torch.equal(y.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    perm = pixel_permutation(784, seed=5)
    assert torch.equal(y.flatten(1), x.flatten(1)[:, perm])
    assert not torch.equal(shuffle_pixels(x, seed=6), y)


@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
def test_unshuffle_flat_permutes_each_row_by_itself(lead):
    """Fields [..., D] (2-, 3- and 4-axis tensors): the result equals un-shuffling every row alone, with the
    inverse permutation written out as a loop."""
    from locality_lib.data import pixel_permutation, shuffle_flat, unshuffle_flat

    g = torch.Generator().manual_seed(0)
    f = torch.randn(*lead, 4, 784, generator=g)
    perm = pixel_permutation(784, seed=3)
    got = unshuffle_flat(f, seed=3)
    rows, want_rows = f.reshape(-1, 784), torch.empty(f.reshape(-1, 784).shape)
    for k in range(rows.shape[0]):
        for j in range(784):
            want_rows[k, perm[j]] = rows[k, j]
    assert torch.equal(got, want_rows.reshape(f.shape))
    assert torch.equal(shuffle_flat(got, seed=3), f)


def test_shuffle_pixels_takes_image_batches_only():
    """Images [B, C, H, W] and fields in image form [B, P, C, H, W] are permuted image by image; a 3-axis tensor
    (one image, or a batch of flat fields [inputs, pixels, D]?) and a flat one are refused with the layouts."""
    from locality_lib.data import shuffle_flat, shuffle_pixels, unshuffle_pixels

    g = torch.Generator().manual_seed(1)
    fields = torch.randn(2, 3, 1, 28, 28, generator=g)
    got = unshuffle_pixels(fields, seed=2)
    for b in range(2):
        for p in range(3):
            assert torch.equal(unshuffle_pixels(fields[b, p][None], seed=2)[0], got[b, p])
            assert torch.equal(shuffle_pixels(got[b, p][None], seed=2)[0], fields[b, p])
    assert torch.equal(shuffle_pixels(fields[:, 0], seed=2).flatten(1), shuffle_flat(fields[:, 0].flatten(1), seed=2))
    for bad in (torch.zeros(4, 3, 784), torch.zeros(1, 28, 28), torch.zeros(5, 784)):
        for fn in (shuffle_pixels, unshuffle_pixels):
            with pytest.raises(ValueError, match=r"\[B, C, H, W\].*flat"):
                fn(bad)


def test_wiener_of_shuffled_data_is_the_shuffled_wiener():
    """Permuting pixels permutes the covariance (P Sigma P^T), so W_t' = P W_t P^T: denoising shuffled
    images with the shuffled data's filter equals shuffling the plain filter's output."""
    from locality_lib import DDPMSchedule, WienerDenoiser
    from locality_lib.data import shuffle_pixels, unshuffle_pixels

    train = load_dataset("mnist", n=3000, seed=0)
    schedule = DDPMSchedule()
    plain, shuffled = WienerDenoiser(train, schedule), WienerDenoiser(shuffle_pixels(train), schedule)
    x_t = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    for t in (50, 500):
        torch.testing.assert_close(shuffled(shuffle_pixels(x_t), t), shuffle_pixels(plain(x_t, t)), rtol=0, atol=1e-8)
        torch.testing.assert_close(unshuffle_pixels(shuffled(shuffle_pixels(x_t), t)), plain(x_t, t), rtol=0, atol=1e-8)


def test_make_transform_rebuilds_the_saved_transforms():
    from locality_lib.data import make_transform, plant_pattern, shuffle_pixels

    x = load_dataset("mnist", split="test", n=5, seed=0)
    assert make_transform(None)(x) is x and make_transform({"name": "none"})(x) is x
    assert torch.equal(make_transform({"name": "w", "amplitude": 1.5, "seed": 2})(x), plant_pattern(x, 1.5, 2))
    assert torch.equal(make_transform({"name": "shuffled", "seed": 4})(x), shuffle_pixels(x, 4))
    with pytest.raises(ValueError, match="unknown transform 'blur'; expected one of none, w, shuffled"):
        make_transform({"name": "blur"})
    with pytest.raises(ValueError, match="takes no parameters"):
        make_transform({"name": "none", "seed": 1})
