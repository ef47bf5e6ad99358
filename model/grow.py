"""Growing a trained GFPGANv1Clean to twice its output size (progressive growing, as in ProGAN/StyleGAN).

`grow_generator(small)` returns a GFPGANv1Clean with `out_size = 2 * small.out_size` and the same other settings
whose output at initialisation is *exactly* `upsample2x(small(avg_pool2x(x)))`: every layer of the small model is
copied to the level of the same resolution, and the new top level is set up so that it adds nothing yet:

- Encoder. The new `conv_body_first` (3 -> c) and first down block (c -> the small model's first width) are set
  so that, on the 2x input, they compute `leaky_relu(small.conv_body_first(avg_pool2x(x)))` exactly. Leaky ReLU
  is undone with the identity  z = (lrelu(z) - lrelu(-z)) / 1.2 : `conv_body_first` emits +x and -x, the block's
  conv1 (centre tap) rebuilds +x and -x again after its activation, the block averages 2x2 (= avg_pool2x), and its
  conv2 applies the small model's first layer, whose activation is the block's own. The block's skip is zero.
- Decoder. The new top `to_rgbs` layer starts at zero, so the image is the bilinear 2x upsampling of the small
  model's last RGB skip; the two new style convs, the new SFT branches and U-Net level learn from there.
- Style code. The latents of the new level reuse the rows of the small model's last level.

So a 256-px model trained for minutes starts from everything the 128-px model learned in hours (docs/MODEL_CARD.md).
"""

from __future__ import annotations

import torch

from model.checkpoint import generator_config
from model.gfpgan_arch import GFPGANv1Clean

LEAKY_SLOPE = 0.2


def grow_generator(small: GFPGANv1Clean) -> GFPGANv1Clean:
    """A GFPGANv1Clean of twice `small`'s size that computes upsample2x(small(avg_pool2x(x))) until trained."""
    config = generator_config(small)
    big = GFPGANv1Clean(**{**config, "out_size": 2 * small.out_size}, fix_decoder=False)
    big_state = big.state_dict()
    big_state.update(_copied_state(small.state_dict(), big_state))
    big.load_state_dict(big_state)
    with torch.no_grad():
        _set_pass_through_encoder(big, small)
        _spread_style_rows(big, small)
        top_rgb = big.stylegan_decoder.to_rgbs[-1]
        top_rgb.modulated_conv.weight.zero_()
        top_rgb.bias.zero_()
    return big.to(next(small.parameters()).device)


def _copied_state(small: dict[str, torch.Tensor], big: dict[str, torch.Tensor]) -> dict:
    """Every small tensor under the key of the same resolution in the big model (encoder indices shift by one)."""
    copied = {}
    for key, value in small.items():
        target = _big_key(key)
        if target is None:
            continue
        if big[target].shape != value.shape:
            raise ValueError(f"cannot grow {key} {tuple(value.shape)} into {target} {tuple(big[target].shape)}")
        copied[target] = value.clone()
    return copied


def _big_key(key: str) -> str | None:
    """The big model's key for a small model's tensor at the same resolution; None for the ones remade."""
    if key.startswith("conv_body_first.") or key.startswith("final_linear."):
        return None  # conv_body_first becomes the pass-through; final_linear grows rows (_spread_style_rows)
    if key.startswith("conv_body_down."):
        _, index, rest = key.split(".", 2)
        return f"conv_body_down.{int(index) + 1}.{rest}"
    return key  # decoder, U-Net up path, SFT branches and noises are indexed from the lowest resolution


def _set_pass_through_encoder(big: GFPGANv1Clean, small: GFPGANv1Clean) -> None:
    first, block = big.conv_body_first, big.conv_body_down[0]
    width = first.out_channels
    if width < 6:
        raise ValueError(f"the grown model's first layer has {width} channels; the pass-through needs 6")
    first.weight.zero_()
    first.bias.zero_()
    block.conv1.weight.zero_()
    block.conv1.bias.zero_()
    block.conv2.weight.zero_()
    block.skip.weight.zero_()
    undo = 1.0 / (1.0 + LEAKY_SLOPE)
    for c in range(3):
        first.weight[c, c] = 1.0  # +x
        first.weight[3 + c, c] = -1.0  # -x
        # conv1: x = (lrelu(x) - lrelu(-x)) / 1.2, emitted as +x and -x again
        for sign, out in ((1.0, c), (-1.0, 3 + c)):
            block.conv1.weight[out, c, 1, 1] = sign * undo
            block.conv1.weight[out, 3 + c, 1, 1] = -sign * undo
        # conv2: the small model's first layer applied to x rebuilt from the pooled +x / -x pair
        w = small.conv_body_first.weight[:, c, 0, 0]
        block.conv2.weight[:, c, 1, 1] = w * undo
        block.conv2.weight[:, 3 + c, 1, 1] = -w * undo
    block.conv2.bias.copy_(small.conv_body_first.bias)


def _spread_style_rows(big: GFPGANv1Clean, small: GFPGANv1Clean) -> None:
    rows = small.final_linear.out_features
    big.final_linear.weight[:rows] = small.final_linear.weight
    big.final_linear.bias[:rows] = small.final_linear.bias
    extra = big.final_linear.out_features - rows
    big.final_linear.weight[rows:] = small.final_linear.weight[rows - extra :]
    big.final_linear.bias[rows:] = small.final_linear.bias[rows - extra :]
