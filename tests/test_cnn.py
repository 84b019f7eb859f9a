"""The attention-free CNN (locality_lib/cnn.py): a convolutional network whose only positional information is the
zero padding at the image's border, so away from the border it commutes with shifts; the DiT does not."""
import pytest
import torch

from locality_lib.cnn import CNN, CNNConfig
from locality_lib.dit import DiT, DiTConfig
from locality_lib.epsilon import architectures


def randomized(net, seed=0):
    torch.manual_seed(seed)
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    return net.double().eval()


def shifted_pair(size, shift):
    """A 20 x 20 random patch at (60, 60) and the same patch moved by ``shift`` on a zero canvas."""
    patch = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = torch.zeros(1, 1, size, size, dtype=torch.float64)
    b = torch.zeros_like(a)
    a[..., 60:80, 60:80] = patch
    b[..., 60 + shift[0] : 80 + shift[0], 60 + shift[1] : 80 + shift[1]] = patch
    return a, b


def test_the_cnn_commutes_with_shifts_away_from_the_border():
    """Shift the content by a multiple of the down-sampling factor (4): the output around it shifts with it,
    to round-off. Any global mixing (attention, a position embedding, global pooling) would break this."""
    net = randomized(CNN(CNNConfig()))
    a, b = shifted_pair(160, (4, 8))
    t = torch.tensor([500])
    with torch.no_grad():
        oa, ob = net(a, t), net(b, t)
    assert (oa[..., 50:90, 50:90] - ob[..., 54:94, 58:98]).abs().max() < 1e-9
    assert (oa[..., 50:90, 50:90] - oa[..., 54:94, 58:98]).abs().max() > 1e-3  # the content is not flat


def test_the_dit_does_not_commute_with_shifts():
    """The same check on the DiT (position embeddings, attention over every token) fails: the control."""
    net = randomized(DiT(DiTConfig(patch_size=4, width=32, depth=1, heads=2, image_size=160)))
    a, b = shifted_pair(160, (4, 8))
    t = torch.tensor([500])
    with torch.no_grad():
        oa, ob = net(a, t), net(b, t)
    assert (oa[..., 52:88, 52:88] - ob[..., 56:92, 60:96]).abs().max() > 1e-3


def test_the_book_cnn_size_and_registration():
    net = CNN(CNNConfig())
    assert net.num_parameters() == sum(p.numel() for p in net.parameters()) == 1_045_729
    assert architectures()["cnn"] == (CNN, CNNConfig)
    kinds = {type(m).__name__ for m in net.modules()}
    assert not any("attention" in k.lower() or "pool" in k.lower() for k in kinds), kinds
    x = torch.randn(3, 1, 28, 28)
    assert net(x, torch.tensor([1, 500, 999])).shape == x.shape
    with pytest.raises(ValueError, match="image_size"):
        CNNConfig(image_size=30)
