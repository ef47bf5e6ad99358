"""StyleGAN2 generator in GFPGAN's "clean" formulation (no custom CUDA ops, bilinear resampling).

Parameter names and shapes follow TencentARC/GFPGAN `stylegan2_clean_arch.py` so official checkpoints load
unchanged. `GFPGANv1Clean` (model/gfpgan_arch.py) uses `StyleGAN2GeneratorClean` as its decoder.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn import init


def default_init_weights(module: nn.Module, scale: float = 1.0, bias_fill: float = 0.0, **kaiming) -> None:
    """Kaiming-normal init of every Conv2d/Linear in `module`, scaled, with constant bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            init.kaiming_normal_(m.weight, **kaiming)
            m.weight.data.mul_(scale)
            if m.bias is not None:
                m.bias.data.fill_(bias_fill)


def stylegan_channels(narrow: float, channel_multiplier: int) -> dict[int, int]:
    """Feature channels per resolution, as in the official StyleGAN2 clean generator."""
    return {
        4: int(512 * narrow),
        8: int(512 * narrow),
        16: int(512 * narrow),
        32: int(512 * narrow),
        64: int(256 * channel_multiplier * narrow),
        128: int(128 * channel_multiplier * narrow),
        256: int(64 * channel_multiplier * narrow),
        512: int(32 * channel_multiplier * narrow),
        1024: int(16 * channel_multiplier * narrow),
    }


class NormStyleCode(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """Style-modulated (and optionally demodulated) convolution with optional 2x bilinear resampling.

    The official code folds the per-sample style into the weights and runs a grouped convolution. Here the
    style scales the input activations and the demodulation scales the output, which is the same
    arithmetic (conv is linear per input channel) but keeps one shared weight for the whole batch: faster on
    CPU, exportable to ONNX, and friendly to channels_last/bf16 kernels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.sample_mode = sample_mode
        self.eps = eps
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        default_init_weights(self.modulation, scale=1, bias_fill=1, a=0, mode="fan_in", nonlinearity="linear")
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
            / math.sqrt(in_channels * kernel_size**2)
        )
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        style = self.modulation(style).view(b, c, 1, 1)
        weight = self.weight[0]  # (out, in, k, k)
        if self.sample_mode == "upsample":
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        elif self.sample_mode == "downsample":
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        out = F.conv2d(x * style, weight, padding=self.padding)
        if self.demodulate:
            # sum over (in, k, k) of (w * s)^2 = (w^2 summed over k,k) @ s^2
            w2 = weight.pow(2).sum(dim=(2, 3))  # (out, in)
            demod = torch.rsqrt(style.view(b, c).pow(2) @ w2.t() + self.eps)  # (b, out)
            out = out * demod.view(b, self.out_channels, 1, 1)
        return out


class StyleConv(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
    ) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels, out_channels, kernel_size, num_style_feat, demodulate=demodulate, sample_mode=sample_mode
        )
        self.weight = nn.Parameter(torch.zeros(1))  # noise injection strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.activate = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) * 2**0.5  # for conversion
        if noise is None:
            b, _, h, w = out.shape
            noise = out.new_empty(b, 1, h, w).normal_()
        out = out + self.weight * noise
        out = out + self.bias
        return self.activate(out)


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(
            in_channels, 3, kernel_size=1, num_style_feat=num_style_feat, demodulate=False
        )
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    def __init__(self, num_channel: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.repeat(batch, 1, 1, 1)


class StyleGAN2GeneratorClean(nn.Module):
    """StyleGAN2 synthesis network; `forward` optionally applies spatial feature transforms (SFT).

    `conditions` is the list [scale_8, shift_8, scale_16, shift_16, ...] produced by GFPGAN's U-Net; each pair
    modulates the output of the first StyleConv of one resolution, on half of its channels when `sft_half`.
    With no conditions this is the plain StyleGAN2 generator.
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: int = 2,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__()
        self.num_style_feat = num_style_feat
        self.sft_half = sft_half
        style_mlp_layers: list[nn.Module] = [NormStyleCode()]
        for _ in range(num_mlp):
            style_mlp_layers += [nn.Linear(num_style_feat, num_style_feat), nn.LeakyReLU(0.2, inplace=True)]
        self.style_mlp = nn.Sequential(*style_mlp_layers)
        default_init_weights(self.style_mlp, scale=1, bias_fill=0, a=0.2, mode="fan_in", nonlinearity="leaky_relu")

        channels = stylegan_channels(narrow, channel_multiplier)
        self.channels = channels
        self.constant_input = ConstantInput(channels[4], size=4)
        self.style_conv1 = StyleConv(channels[4], channels[4], 3, num_style_feat)
        self.to_rgb1 = ToRGB(channels[4], num_style_feat, upsample=False)

        self.log_size = int(math.log2(out_size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2

        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            resolution = 2 ** ((layer_idx + 5) // 2)
            self.noises.register_buffer(f"noise{layer_idx}", torch.randn(1, 1, resolution, resolution))

        in_channels = channels[4]
        for i in range(3, self.log_size + 1):
            out_channels = channels[2**i]
            self.style_convs.append(StyleConv(in_channels, out_channels, 3, num_style_feat, sample_mode="upsample"))
            self.style_convs.append(StyleConv(out_channels, out_channels, 3, num_style_feat))
            self.to_rgbs.append(ToRGB(out_channels, num_style_feat, upsample=True))
            in_channels = out_channels

    def stored_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

    def forward(
        self,
        styles: list[torch.Tensor],
        conditions: list[torch.Tensor] | None = None,
        input_is_latent: bool = False,
        randomize_noise: bool = True,
        return_latents: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not input_is_latent:
            styles = [self.style_mlp(s) for s in styles]
        noise: list[torch.Tensor | None] = [None] * self.num_layers if randomize_noise else list(self.stored_noise())
        if len(styles) != 1:
            raise ValueError("style mixing is not supported; pass exactly one style tensor")
        latent = styles[0] if styles[0].ndim == 3 else styles[0].unsqueeze(1).repeat(1, self.num_latent, 1)
        conditions = conditions or []

        out = self.constant_input(latent.shape[0])
        out = self.style_conv1(out, latent[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv1, conv2, noise1, noise2, to_rgb in zip(
            self.style_convs[::2], self.style_convs[1::2], noise[1::2], noise[2::2], self.to_rgbs, strict=True
        ):
            out = conv1(out, latent[:, i], noise=noise1)
            if i < len(conditions):
                out = self._apply_sft(out, conditions[i - 1], conditions[i])
            out = conv2(out, latent[:, i + 1], noise=noise2)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip, (latent if return_latents else None)

    def _apply_sft(self, out: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        if not self.sft_half:
            return out * scale + shift
        out_same, out_sft = torch.split(out, out.size(1) // 2, dim=1)
        return torch.cat([out_same, out_sft * scale + shift], dim=1)
