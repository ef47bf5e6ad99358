"""GFPGANv1Clean: U-Net degradation remover + StyleGAN2 decoder joined by channel-split SFT layers.

Constructor keywords, state_dict keys and forward signature follow TencentARC/GFPGAN
`gfpganv1_clean_arch.py`, so released GFPGANv1.3 / v1.4 checkpoints load unchanged and give the official
outputs. We write it here rather than import basicsr/gfpgan: those packages download weights at run time and
basicsr no longer imports with current torchvision.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from model.stylegan2_arch import StyleGAN2GeneratorClean, stylegan_channels

# Constructor kwargs of the released GFPGANv1.3 / v1.4 checkpoints (86.4 M parameters, 512x512 faces).
V14_CONFIG = {
    "out_size": 512,
    "num_style_feat": 512,
    "channel_multiplier": 2,
    "num_mlp": 8,
    "input_is_latent": True,
    "different_w": True,
    "narrow": 1,
    "sft_half": True,
}


class ResBlock(nn.Module):
    """Residual block that resamples by 2 (bilinear) between its two convolutions."""

    def __init__(self, in_channels: int, out_channels: int, mode: str = "down") -> None:
        super().__init__()
        if mode not in ("down", "up"):
            raise ValueError(f"mode must be 'down' or 'up', not {mode!r}")
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.mode = mode

    def resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "down":
            # Bilinear 0.5x with align_corners=False averages each 2x2 block: same numbers, 2-5x faster.
            return F.avg_pool2d(x, 2)
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x), negative_slope=0.2)
        out = F.leaky_relu(self.conv2(self.resample(out)), negative_slope=0.2)
        return out + self.skip(self.resample(x))


def _sft_branch(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(channels, out_channels, 3, 1, 1),
    )


class GFPGANv1Clean(nn.Module):
    """The GFPGAN generator. Input and output: Bx3xHxW RGB in [-1, 1], H = W = `out_size` (64..1024)."""

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        channel_multiplier: int = 1,
        decoder_load_path: str | None = None,
        fix_decoder: bool = True,
        num_mlp: int = 8,
        input_is_latent: bool = False,
        different_w: bool = False,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__()
        if out_size < 64 or out_size > 1024 or out_size & (out_size - 1):
            raise ValueError(f"out_size must be a power of two in 64..1024, not {out_size}")
        self.out_size = out_size
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.num_style_feat = num_style_feat
        self.log_size = int(math.log2(out_size))
        channels = stylegan_channels(narrow * 0.5, channel_multiplier)  # the U-Net is half as wide

        self.conv_body_first = nn.Conv2d(3, channels[out_size], 1)
        in_channels = channels[out_size]
        self.conv_body_down = nn.ModuleList()
        for i in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlock(in_channels, channels[2 ** (i - 1)], mode="down"))
            in_channels = channels[2 ** (i - 1)]
        self.final_conv = nn.Conv2d(in_channels, channels[4], 3, 1, 1)

        in_channels = channels[4]
        self.conv_body_up = nn.ModuleList()
        for i in range(3, self.log_size + 1):
            self.conv_body_up.append(ResBlock(in_channels, channels[2**i], mode="up"))
            in_channels = channels[2**i]
        self.toRGB = nn.ModuleList(nn.Conv2d(channels[2**i], 3, 1) for i in range(3, self.log_size + 1))

        linear_out = (self.log_size * 2 - 2) * num_style_feat if different_w else num_style_feat
        self.final_linear = nn.Linear(channels[4] * 4 * 4, linear_out)

        self.stylegan_decoder = StyleGAN2GeneratorClean(
            out_size=out_size,
            num_style_feat=num_style_feat,
            num_mlp=num_mlp,
            channel_multiplier=channel_multiplier,
            narrow=narrow,
            sft_half=sft_half,
        )
        if decoder_load_path:
            state = torch.load(decoder_load_path, map_location="cpu", weights_only=True)
            self.stylegan_decoder.load_state_dict(state.get("params_ema", state))
        if fix_decoder:
            self.stylegan_decoder.requires_grad_(False)

        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for i in range(3, self.log_size + 1):
            ch = channels[2**i]
            sft_out = ch if sft_half else ch * 2
            self.condition_scale.append(_sft_branch(ch, sft_out))
            self.condition_shift.append(_sft_branch(ch, sft_out))

    def forward(
        self,
        x: torch.Tensor,
        return_latents: bool = False,
        return_rgb: bool = True,
        randomize_noise: bool = True,
        **kwargs: object,  # GFPGANer passes `weight`; the clean architecture ignores it, as upstream does
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        style_code, conditions, out_rgbs = self.encode(x, return_rgb=return_rgb)
        image, _ = self.stylegan_decoder(
            [style_code],
            conditions,
            input_is_latent=self.input_is_latent,
            randomize_noise=randomize_noise,
            return_latents=return_latents,
        )
        return image, out_rgbs

    def encode(
        self, x: torch.Tensor, return_rgb: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The U-Net half: style code (B x num_latent x F if `different_w`, else B x F), the SFT conditions
        [scale_8, shift_8, scale_16, ...] and the intermediate toRGB images. `forward` feeds the first two to
        the StyleGAN2 decoder; model/inference.py feeds them to its folded-weight decoder."""
        conditions: list[torch.Tensor] = []
        unet_skips: list[torch.Tensor] = []
        out_rgbs: list[torch.Tensor] = []

        feat = F.leaky_relu(self.conv_body_first(x), negative_slope=0.2)
        for down in self.conv_body_down:
            feat = down(feat)
            unet_skips.insert(0, feat)
        feat = F.leaky_relu(self.final_conv(feat), negative_slope=0.2)

        style_code = self.final_linear(feat.flatten(1))
        if self.different_w:
            style_code = style_code.view(style_code.size(0), -1, self.num_style_feat)

        for i, up in enumerate(self.conv_body_up):
            feat = up(feat + unet_skips[i])
            conditions.append(self.condition_scale[i](feat))
            conditions.append(self.condition_shift[i](feat))
            if return_rgb:
                out_rgbs.append(self.toRGB[i](feat))
        return style_code, conditions, out_rgbs
