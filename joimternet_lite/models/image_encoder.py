"""The image tower: a grid of region vectors and a global vector per image.

Taught in notebook 03. Two families, one interface: ``forward(images)`` with images (B, 1, H, W)
in [-1, 1] returns ``ImageOutput(regions (B, R, D), image_vectors (B, D))``, R = gh * gw in
row-major order, and ``grid_for(height, width)`` gives (gh, gw) for an input size.

- :class:`AuthorsCNN`, the authors' network (their paper and code), trained from scratch: a 7x7 stem and
  six stages of two torchvision BasicBlocks (widths 8..512), soft attention after stages 4 and 5,
  regions from stage 5 through a bias-free 1x1 conv, the global vector from stage 6 through a 2x2
  average pool and a Linear. At the paper's 2048 px the strides are stem 4 and 2 per stage, which
  gives the 16x16 grid. For a smaller ``image_size`` some stages lose their stride, so
  ``image_size / grid`` stays the total stride to stage 5 and the grid is kept: by default the
  *earliest* (fine early maps, as at full size), or with ``drop_strides="late"`` the latest ones
  (early downsampling as in the paper; about 4x cheaper at 128 px, the ``demo_cpu`` choice).
- :class:`TorchvisionEncoder`: resnet18 / resnet50 / densenet121. Regions from the last conv stage
  through a 1x1 conv; a map larger than the grid is average-pooled to it, a smaller one gets the
  stride of its last downsampling stages removed at build time. Global: average pool + Linear.
  The first conv takes 1 channel (ImageNet weights summed over RGB when ``pretrained``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torchvision import models
from torchvision.models.resnet import BasicBlock

from ..config import DROP_STRIDES, ImageModelConfig, choices

PAPER_IMAGE_SIZE = 2048


class ImageOutput(NamedTuple):
    regions: torch.Tensor        # (B, R, D)
    image_vectors: torch.Tensor  # (B, D)


class SoftAttention(nn.Module):
    """Y = X + s * (X * A), A = sum over heads of a spatial softmax of a 1x1 channel-mixing conv.

    The authors write the channel mixing as ``Conv3d(1, heads, kernel=(C, 1, 1))`` + LeakyReLU;
    a ``Conv2d(C, heads, 1)`` is the same map with the same parameters. s is a learnable scalar
    initialised U(0, 1).
    """

    def __init__(self, channels: int, heads: int = 16):
        super().__init__()
        self.mix = nn.Conv2d(channels, heads, kernel_size=1)
        self.act = nn.LeakyReLU()
        self.scale = nn.Parameter(torch.rand(()))

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> A (B, 1, H, W); each head's map sums to 1 over H * W."""
        heads = self.act(self.mix(x))
        return heads.flatten(2).softmax(dim=-1).sum(dim=1).view(x.shape[0], 1, *x.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * (x * self.attention_map(x))


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _map_size(size: int, downsamplers: list[tuple[int, int, int]]) -> int:
    for kernel, stride, padding in downsamplers:
        size = _conv_out(size, kernel, stride, padding)
    return size


def authors_strides(image_size: int, grid: int, drop: str = "early") -> tuple[int, list[int]]:
    """Stem stride and the strides of stages 1-5 so that stage 5 is ``grid`` x ``grid``.

    The total stride P = image_size / grid must be a power of two up to 128 (the paper: stem 4,
    five stages of 2, at 2048 px with grid 16). ``drop="early"`` removes strides from the earliest
    stages first, ``"late"`` from the last stages first; the stem keeps stride 4 while P allows.
    """
    if drop not in DROP_STRIDES:
        raise ValueError(f"drop_strides={drop!r}: use one of {DROP_STRIDES}")
    total, remainder = divmod(image_size, grid)
    if remainder or total < 1 or total & (total - 1) or total > 128:
        raise ValueError(f"image_size {image_size} / grid {grid} must be a power of two between 1 and 128; "
                         f"choose model.image.grid so that it divides image_size that way")
    stem = min(4, total)
    halvings = int(math.log2(total // stem))
    if drop == "late":
        return stem, [2] * halvings + [1] * (5 - halvings)
    return stem, [1] * (5 - halvings) + [2] * halvings


class AuthorsCNN(nn.Module):
    """The authors' from-scratch CNN (about 12.4 M parameters at the paper's widths, embed 512)."""

    def __init__(self, embed_dim: int = 512, widths: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512),
                 grid: int = 16, image_size: int = PAPER_IMAGE_SIZE, soft_attention: bool = True,
                 attention_heads: int = 16, drop_strides: str = "early"):
        super().__init__()
        if len(widths) != 7:
            raise ValueError(f"widths needs 7 entries (stem + six stages), got {widths}")
        stem_stride, stage_strides = authors_strides(image_size, grid, drop_strides)
        self.image_size, self.grid = image_size, grid
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 7, stride=stem_stride, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        strides = [*stage_strides, 2]
        self.stages = nn.ModuleList(_stage(widths[k], widths[k + 1], strides[k]) for k in range(6))
        self.attention4 = SoftAttention(widths[4], attention_heads) if soft_attention else nn.Identity()
        self.attention5 = SoftAttention(widths[5], attention_heads) if soft_attention else nn.Identity()
        self.region_head = nn.Conv2d(widths[5], embed_dim, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.global_head = nn.Linear(4 * widths[6], embed_dim)
        self._downsamplers = [(7, stem_stride, 3)] + [(3, s, 1) for s in stage_strides]

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Region grid (gh, gw) for an input of height x width."""
        return _map_size(height, self._downsamplers), _map_size(width, self._downsamplers)

    def forward(self, images: torch.Tensor) -> ImageOutput:
        x = self.stem(images)
        for stage in self.stages[:4]:
            x = stage(x)
        x = self.attention5(self.stages[4](self.attention4(x)))
        regions = self.region_head(x).flatten(2).transpose(1, 2)
        pooled = self.pool(self.stages[5](x)).flatten(1)
        return ImageOutput(regions, self.global_head(pooled))


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
    return nn.Sequential(BasicBlock(in_channels, out_channels, stride, downsample),
                         BasicBlock(out_channels, out_channels))


TORCHVISION_BACKBONES = tuple(b for b in choices(ImageModelConfig, "backbone") if b != "authors_cnn")


def gray_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A 1-channel copy of an RGB conv whose weights are summed over RGB.

    On a gray image repeated over three channels both give the same output.
    """
    gray = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     bias=conv.bias is not None)
    with torch.no_grad():
        gray.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            gray.bias.copy_(conv.bias)
    return gray


class TorchvisionEncoder(nn.Module):
    """resnet18 / resnet50 / densenet121 as the image tower; see the module docstring."""

    def __init__(self, name: str, embed_dim: int = 512, grid: int = 16, image_size: int = 512,
                 pretrained: bool = False):
        super().__init__()
        if name not in TORCHVISION_BACKBONES:
            raise ValueError(f"backbone {name!r}: use authors_cnn or one of {TORCHVISION_BACKBONES}")
        net = models.get_model(name, weights="DEFAULT" if pretrained else None)
        self.grid, self.image_size = grid, image_size
        if name.startswith("resnet"):
            self.body, channels, stages = _resnet_body(net, pretrained)
        else:
            self.body, channels, stages = _densenet_body(net, pretrained)
        self._downsamplers = self._unstride([(7, 2, 3), (3, 2, 1)], stages)
        self.region_head = nn.Conv2d(channels, embed_dim, 1, bias=False)
        self.region_pool = nn.AdaptiveAvgPool2d(grid)
        self.global_head = nn.Linear(channels, embed_dim)

    def _unstride(self, stem_ops, stages) -> list[tuple[int, int, int]]:
        """Drop the stride of the last downsampling stages until the map reaches the grid.

        Returns the (kernel, stride, padding) of the downsampling ops that remain.
        """
        kept = len(stages)
        while _map_size(self.image_size, stem_ops + [op for op, _ in stages[:kept]]) < self.grid:
            if kept == 0:
                raise ValueError(f"image_size {self.image_size} is too small for a {self.grid}x{self.grid} "
                                 f"grid with this backbone; lower model.image.grid or raise data.image_size")
            kept -= 1
            stages[kept][1]()
        return stem_ops + [op for op, _ in stages[:kept]]

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Region grid (gh, gw) for an input of height x width (maps above the grid are pooled)."""
        return tuple(min(_map_size(n, self._downsamplers), self.grid) for n in (height, width))

    def forward(self, images: torch.Tensor) -> ImageOutput:
        features = self.body(images)
        regions = self.region_head(features)
        if regions.shape[-2] > self.grid or regions.shape[-1] > self.grid:
            regions = self.region_pool(regions)
        image_vectors = self.global_head(features.mean(dim=(2, 3)))
        return ImageOutput(regions.flatten(2).transpose(1, 2), image_vectors)


def _first_conv(conv: nn.Conv2d, pretrained: bool) -> nn.Conv2d:
    if pretrained:
        return gray_conv(conv)
    return nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)


def _set_stride_one(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
            m.stride = (1, 1)


def _resnet_body(net, pretrained):
    net.conv1 = _first_conv(net.conv1, pretrained)
    body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    # a strided stage's first block holds a 3x3 stride-2 conv (and a 1x1 stride-2 shortcut: same output size)
    stages = [((3, 2, 1), lambda layer=layer: _set_stride_one(layer[0])) for layer in (net.layer2, net.layer3, net.layer4)]
    return body, net.fc.in_features, stages


def _densenet_body(net, pretrained):
    features = net.features
    features.conv0 = _first_conv(features.conv0, pretrained)
    body = nn.Sequential(features, nn.ReLU(inplace=True))
    # torchvision's DenseNet downsamples in each transition with AvgPool2d(2, 2)
    stages = [((2, 2, 0), lambda t=t: setattr(t, "pool", nn.Identity()))
              for t in (features.transition1, features.transition2, features.transition3)]
    return body, net.classifier.in_features, stages


def build_image_encoder(cfg: ImageModelConfig, embed_dim: int, image_size: int | None = None) -> nn.Module:
    """The image tower named by ``cfg.backbone`` for square inputs of ``image_size``.

    ``image_size`` defaults to the paper's 2048 for the authors' CNN and 512 for torchvision nets.
    """
    if cfg.backbone == "authors_cnn":
        return AuthorsCNN(embed_dim, tuple(cfg.widths), cfg.grid, image_size or PAPER_IMAGE_SIZE,
                          cfg.soft_attention, cfg.attention_heads, cfg.drop_strides)
    return TorchvisionEncoder(cfg.backbone, embed_dim, cfg.grid, image_size or 512, cfg.pretrained)
