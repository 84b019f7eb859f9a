"""The shipped networks by name: each loads, carries its data set and transform, and denoises."""
import pytest
import torch

from locality_lib import PRETRAINED, DDPMSchedule, EpsilonDenoiser, WienerDenoiser, load_dataset, mse, on_grid, pretrained
from locality_lib.data import pixel_permutation, plant_pattern, shuffle_pixels, unshuffle_pixels
from locality_lib.cnn import CNN
from locality_lib.dit import DiT, DiTConfig
from locality_lib.sensitivity import sensitivity_field
from locality_lib.epsilon import UNetDenoiser
from locality_lib.unet import UNet

NAMES = ["unet/mnist", "unet/fashion_mnist", "dit/mnist", "cnn/mnist", "unet/mnist-w", "dit/mnist-w",
         "unet/mnist-shuffled", "dit/mnist-shuffled", "unet/mnist-plain", "dit/mnist-plain", "unet/mnist-shuffled-4x",
         "dit/mnist-shuffled-4x", "unet/mnist-plain-4x", "dit/mnist-plain-4x"]
NETS = {"unet": UNet, "dit": DiT, "cnn": CNN}


def test_the_names_are_listed_with_descriptions():
    assert list(PRETRAINED) == NAMES and all(isinstance(v, str) and v for v in PRETRAINED.values())
    with pytest.raises(ValueError, match="no pretrained network named 'vit/mnist'; expected one of: unet/mnist,"):
        pretrained("vit/mnist")


@pytest.mark.parametrize("name", NAMES)
def test_each_network_loads_with_its_data_and_transform(name):
    den = pretrained(name)
    arch, data = name.split("/")
    assert isinstance(den.net, NETS[arch]) and den.meta["name"] == name
    assert den.dataset == data.split("-")[0]
    assert isinstance(den, UNetDenoiser) == (arch == "unet")
    x = load_dataset(den.dataset, "test", n=4, seed=0)
    if data.endswith("-w"):
        assert den.transform.func is plant_pattern and torch.equal(den.transform(x), plant_pattern(x, 2.0, 0))
    elif "-shuffled" in data:
        assert den.transform.func is shuffle_pixels and torch.equal(den.transform(x), shuffle_pixels(x, 0))
    else:
        assert den.transform(x) is x
    assert den.net.num_parameters() == den.meta["num_parameters"]


@pytest.mark.parametrize("name", ["dit/mnist", "cnn/mnist", "unet/mnist-w", "dit/mnist-w"])
def test_trained_networks_beat_the_wiener_filter_of_their_own_data(name):
    """The UNets and the CNN at t = 200 and 400; the DiTs at t = 200 only: at t = 400 the CPU-trained DiTs have
    about 1.2x the filter's error on these 64 images (locality_lib/checkpoints/README.md)."""
    den = pretrained(name)
    schedule = DDPMSchedule()
    wiener = WienerDenoiser(den.transform(load_dataset(den.dataset, "train", n=10000, seed=0)), schedule)
    test = den.transform(load_dataset(den.dataset, "test", n=64, seed=1))
    noise = torch.randn(test.shape, generator=torch.Generator().manual_seed(0))
    for t in (200,) if name.startswith("dit") else (200, 400):
        x_t = schedule.add_noise(test, t, noise)
        with torch.no_grad():
            assert mse(den(x_t, t), test) < mse(wiener(x_t, t), test)


def test_the_shipped_cnn_is_attention_free():
    """cnn/mnist is the architecture of tests/test_cnn.py: convolutions, up-sampling and norms, no attention."""
    kinds = {type(m).__name__ for m in pretrained("cnn/mnist").net.modules()}
    assert kinds <= {"CNN", "ResBlock", "PixelNorm", "LayerNorm", "Conv2d", "Linear", "SiLU", "Upsample", "Identity",
                     "Sequential", "ModuleList"}, kinds


def test_on_grid_carries_a_shuffled_network_back_to_the_grid():
    """on_grid(den) = unshuffle . den . shuffle, so its field at grid pixel m is the network's field at the
    shuffled position of m with every input pixel put back in place."""
    torch.manual_seed(0)
    net = DiT(DiTConfig(patch_size=7, width=16, depth=1, heads=2)).double()
    for p in net.parameters():
        p.data.normal_(0, 0.3)
    den = EpsilonDenoiser(net, meta={"dataset": "mnist", "transform": {"name": "shuffled", "seed": 3}})
    grid = on_grid(den)
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(grid(x, 300), unshuffle_pixels(den(shuffle_pixels(x, 3), 300), 3))
    m = 14 * 28 + 10
    pos = int((pixel_permutation(784, 3) == m).nonzero())  # shuffled image: y[pos] = x[perm[pos]] = x[m]
    field_grid = sensitivity_field(grid, x, 300, [m])  # [2, 1, 1, 28, 28]
    field_net = sensitivity_field(den, shuffle_pixels(x, 3), 300, [pos])
    torch.testing.assert_close(field_grid, unshuffle_pixels(field_net, 3), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="trained on shuffled pixels"):
        on_grid(pretrained("unet/mnist"))
