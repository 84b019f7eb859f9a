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
