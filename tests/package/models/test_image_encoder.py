"""The image towers: the authors' CNN (parameter count, strides, grid) and the torchvision backbones."""

import pytest
import torch
from torch import nn

from joimternet_lite.config import ImageModelConfig
from joimternet_lite.models.image_encoder import (
    AuthorsCNN,
    SoftAttention,
    TorchvisionEncoder,
    authors_strides,
    build_image_encoder,
    gray_conv,
)

TINY_WIDTHS = (4, 4, 8, 8, 16, 16, 32)


def hand_count_authors_cnn(widths=(8, 16, 32, 64, 128, 256, 512), embed=512, heads=16):
    """The parameter count derived from the layer definitions (the authors' layer list, counted by hand)."""
    stem = 7 * 7 * 1 * widths[0] + 2 * widths[0]                 # bias-free conv + BN
    stages = 0
    for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
        first = 9 * c_in * c_out + 9 * c_out * c_out + 4 * c_out   # two 3x3 convs + two BNs
        shortcut = c_in * c_out + 2 * c_out                        # 1x1 conv + BN
        second = 2 * 9 * c_out * c_out + 4 * c_out
        stages += first + shortcut + second
    attention = sum(heads * c + heads + 1 for c in (widths[4], widths[5]))  # mixing conv + scale s
    region_head = widths[5] * embed
    global_head = 4 * widths[6] * embed + embed
    return stem + stages + attention + region_head + global_head


def test_authors_cnn_parameter_count_matches_the_hand_count():
    expected = hand_count_authors_cnn()
    assert expected == 12_378_906  # "about 12.4 M"
    model = AuthorsCNN(embed_dim=512)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("image_size, grid, expected", [
    (2048, 16, (4, [2, 2, 2, 2, 2])),   # the paper
    (512, 16, (4, [1, 1, 2, 2, 2])),
    (128, 16, (4, [1, 1, 1, 1, 2])),
    (64, 16, (4, [1, 1, 1, 1, 1])),
    (32, 16, (2, [1, 1, 1, 1, 1])),
])
def test_strides_drop_from_the_earliest_stages(image_size, grid, expected):
    assert authors_strides(image_size, grid) == expected


@pytest.mark.parametrize("image_size, grid, expected", [
    (2048, 16, (4, [2, 2, 2, 2, 2])),   # nothing to drop: the paper either way
    (512, 16, (4, [2, 2, 2, 1, 1])),
    (128, 8, (4, [2, 2, 1, 1, 1])),
])
def test_late_option_drops_strides_from_the_last_stages(image_size, grid, expected):
    assert authors_strides(image_size, grid, "late") == expected


@pytest.mark.parametrize("drop", ["early", "late"])
def test_both_stride_orders_keep_the_grid(drop):
    model = AuthorsCNN(32, TINY_WIDTHS, 8, 128, drop_strides=drop).eval()
    out = model(torch.randn(1, 1, 128, 128))
    assert model.grid_for(128, 128) == (8, 8) and out.regions.shape == (1, 64, 32)
    strided = [s for s in model.stages if s[0].downsample is not None and s[0].conv1.stride == (2, 2)]
    assert len(strided) == 3                    # stages 1-2 (late) or 4-5 (early), and stage 6
    with pytest.raises(ValueError, match="drop_strides"):
        authors_strides(128, 8, "middle")


def test_impossible_grid_is_refused():
    with pytest.raises(ValueError, match="power of two"):
        authors_strides(96, 16)


@pytest.mark.parametrize("size, grid", [(64, 8), (32, 4)])
def test_authors_cnn_keeps_the_grid(size, grid):
    model = AuthorsCNN(32, TINY_WIDTHS, grid, size).eval()
    regions, vectors = model(torch.randn(2, 1, size, size))
    assert regions.shape == (2, grid * grid, 32) and vectors.shape == (2, 32)
    assert model.grid_for(size, size) == (grid, grid)
    regions, _ = model(torch.randn(1, 1, size + 16, size - 8))   # other sizes: grid_for says what comes out
    gh, gw = model.grid_for(size + 16, size - 8)
    assert regions.shape[1] == gh * gw


def test_soft_attention_matches_the_authors_conv3d_form():
    block = SoftAttention(channels=6, heads=4)
    x = torch.randn(2, 6, 5, 7)
    conv3d = nn.Conv3d(1, 4, kernel_size=(6, 1, 1))
    with torch.no_grad():
        conv3d.weight.copy_(block.mix.weight.view(4, 1, 6, 1, 1))
        conv3d.bias.copy_(block.mix.bias)
        heads = nn.functional.leaky_relu(conv3d(x[:, None])).squeeze(2)      # (B, heads, H, W)
        maps = torch.softmax(heads.flatten(2), dim=-1).view_as(heads).sum(1, keepdim=True)
        expected = x + block.scale * (x * maps)
        torch.testing.assert_close(block(x), expected)
        assert torch.allclose(block.attention_map(x).sum(dim=(1, 2, 3)), torch.full((2,), 4.0))
    assert 0 <= block.scale.item() <= 1


def test_every_authors_cnn_parameter_gets_a_gradient():
    model = AuthorsCNN(16, TINY_WIDTHS, 4, 32)
    regions, vectors = model(torch.randn(2, 1, 32, 32))
    (regions.sum() + vectors.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name, size, grid", [
    ("resnet18", 64, 2),      # the natural map (2x2) is the grid
    ("resnet18", 64, 1),      # a larger map is pooled to the grid
    ("resnet18", 32, 4),      # strides removed to reach the grid
    ("resnet50", 32, 2),
    ("densenet121", 32, 2),
])
def test_torchvision_backbones_take_one_channel_and_keep_the_grid(name, size, grid):
    model = TorchvisionEncoder(name, 16, grid, size).eval()
    with torch.no_grad():
        regions, vectors = model(torch.randn(2, 1, size, size))
    assert regions.shape == (2, grid * grid, 16) and vectors.shape == (2, 16)
    assert model.grid_for(size, size) == (grid, grid)


def test_torchvision_too_small_image_is_refused():
    with pytest.raises(ValueError, match="too small"):
        TorchvisionEncoder("resnet18", 16, grid=16, image_size=32)


def test_gray_conv_equals_rgb_conv_on_a_repeated_gray_image():
    rgb = nn.Conv2d(3, 5, 7, stride=2, padding=3, bias=False)
    image = torch.randn(2, 1, 20, 20)
    torch.testing.assert_close(gray_conv(rgb)(image), rgb(image.repeat(1, 3, 1, 1)))


def test_build_image_encoder_dispatches_on_the_backbone():
    cfg = ImageModelConfig(widths=TINY_WIDTHS, grid=4)
    assert isinstance(build_image_encoder(cfg, 16, image_size=32), AuthorsCNN)
    cfg = ImageModelConfig(backbone="resnet18", grid=2)
    assert isinstance(build_image_encoder(cfg, 16, image_size=64), TorchvisionEncoder)
    with pytest.raises(ValueError, match="backbone"):
        build_image_encoder(ImageModelConfig(backbone="vgg"), 16, image_size=64)
