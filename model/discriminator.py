"""StyleGAN2-style discriminator / Wasserstein critic that returns a raw score (no sigmoid).

The same network serves every adversarial loss in model/losses.py: GFPGAN's logistic loss reads the score as a
logit, the WGAN losses read it as a critic value. As in StyleGAN2 (and GFPGAN's critic), layers use the
equalised learning rate: parameters are stored as N(0, 1) and scaled by 1/sqrt(fan_in) at run time, and
activations are leaky ReLU * sqrt(2). Besides helping Adam/RMSProp, this makes weight clipping meaningful in a
deep critic without batch normalisation: clipping the stored weights to [-c, c] bounds every layer relative to its
fan-in, where an absolute bound such as 0.01 on raw weights would silence a 14-layer critic (measured: the score
no longer depends on the input). Bilinear downsampling replaces StyleGAN2's upfirdn blur. Widths follow the
generator's `narrow` / `channel_multiplier` so it is sized to match any generator configuration.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from model.stylegan2_arch import stylegan_channels

_SQRT2 = math.sqrt(2.0)


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate (weights ~ N(0, 1), scaled by 1/sqrt(fan_in) when applied)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = 1 / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * _SQRT2


class DownBlock(nn.Module):
    """Two 3x3 convolutions with a 2x downsample between them and a 1x1 residual path."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, in_channels, 3)
        self.conv2 = EqualConv2d(in_channels, out_channels, 3)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = lrelu(self.conv1(x))
        out = F.interpolate(out, scale_factor=0.5, mode="bilinear", align_corners=False)
        out = lrelu(self.conv2(out))
        skip = self.skip(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False))
        return (out + skip) / _SQRT2


class StyleGAN2Discriminator(nn.Module):
    """Critic for `out_size` x `out_size` RGB images in [-1, 1]; `forward` returns a B-vector of scores.

    `mbstd_group` > 0 appends StyleGAN2's minibatch standard-deviation feature; set it to 0 for WGAN-GP, whose
    per-sample gradient penalty assumes samples are scored independently.
    """

    def __init__(
        self,
        out_size: int,
        channel_multiplier: int = 2,
        narrow: float = 1.0,
        mbstd_group: int = 4,
    ) -> None:
        super().__init__()
        channels = stylegan_channels(narrow, channel_multiplier)
        log_size = int(math.log2(out_size))
        self.mbstd_group = mbstd_group
        self.conv_first = EqualConv2d(3, channels[out_size], 1)
        blocks = []
        in_channels = channels[out_size]
        for i in range(log_size, 2, -1):
            blocks.append(DownBlock(in_channels, channels[2 ** (i - 1)]))
            in_channels = channels[2 ** (i - 1)]
        self.blocks = nn.ModuleList(blocks)
        extra = 1 if mbstd_group > 0 else 0
        self.final_conv = EqualConv2d(in_channels + extra, channels[4], 3)
        self.final_linear1 = EqualLinear(channels[4] * 4 * 4, channels[4])
        self.final_linear2 = EqualLinear(channels[4], 1)

    def _minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        group = math.gcd(b, self.mbstd_group)
        y = x.view(group, -1, c, h, w)
        std = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # (b / group,)
        std = std.view(-1, 1, 1, 1).repeat(group, 1, h, w)
        return torch.cat([x, std], dim=1)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Scores (B,); with `return_features`, also the list of block activations (feature matching)."""
        features = []
        out = lrelu(self.conv_first(x))
        for block in self.blocks:
            out = block(out)
            features.append(out)
        if self.mbstd_group > 0:
            out = self._minibatch_stddev(out)
        out = lrelu(self.final_conv(out))
        score = self.final_linear2(lrelu(self.final_linear1(out.flatten(1)))).squeeze(1)
        return (score, features) if return_features else score
