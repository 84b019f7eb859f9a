"""Bad input fails fast with a message that says what was expected."""
import pytest
import torch

from locality_lib import LocalityDenoiser, NearestDenoiser, OptimalDenoiser, WienerDenoiser

MODELS = [OptimalDenoiser, WienerDenoiser, LocalityDenoiser, NearestDenoiser]


@pytest.fixture(scope="module")
def train():
    return torch.rand(20, 1, 4, 4) * 2 - 1


@pytest.mark.parametrize("cls", MODELS)
def test_bad_training_sets(cls):
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        cls(torch.rand(20, 4, 4))
    with pytest.raises(ValueError, match="empty"):
        cls(torch.rand(0, 1, 4, 4))
    bad = torch.rand(20, 1, 4, 4)
    bad[3, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        cls(bad)
    with pytest.raises(ValueError, match="float"):
        cls(torch.zeros(20, 1, 4, 4, dtype=torch.uint8))


@pytest.mark.parametrize("cls", MODELS)
def test_bad_queries(cls, train):
    den = cls(train)
    with pytest.raises(ValueError, match=r"\(1, 4, 4\)"):
        den(torch.rand(2, 3, 4, 4), 10)
    with pytest.raises(ValueError, match=r"\(1, 4, 4\)"):
        den(torch.rand(2, 1, 5, 4), 10)
    with pytest.raises(ValueError, match="0..999"):
        den(torch.rand(2, 1, 4, 4), 1000)
    with pytest.raises(ValueError, match="0..999"):
        den(torch.rand(2, 1, 4, 4), torch.tensor([3, -1]))
    with pytest.raises(ValueError, match="batch size"):
        den(torch.rand(2, 1, 4, 4), torch.tensor([3, 4, 5]))
    x = torch.rand(2, 1, 4, 4)
    x[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        den(x, 10)


def test_bad_options(train):
    with pytest.raises(ValueError, match="temperature"):
        OptimalDenoiser(train, temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        OptimalDenoiser(train, top_k=0)
    with pytest.raises(ValueError, match="mask_convention"):
        LocalityDenoiser(train, mask_convention="diagonal")
    with pytest.raises(ValueError, match="softmax"):
        LocalityDenoiser(train, softmax="approximate")
    with pytest.raises(ValueError, match="threshold"):
        LocalityDenoiser(train, threshold=-0.1)
    with pytest.raises(ValueError, match="threshold"):
        LocalityDenoiser(train, threshold=1.5)
    with pytest.raises(ValueError, match="schedule"):
        OptimalDenoiser(train, schedule="ddpm")
