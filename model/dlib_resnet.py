"""A differentiable PyTorch port of dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1`),
with its weights read straight from the shipped .dat file, and a differentiable copy of dlib's 150x150 face-chip
extraction, so the dlib identity embedding used for evaluation (model/identity.py) can also serve as a training
loss.

This module owns three things:
1. `read_dlib_face_resnet`: a pure-Python/numpy reader of dlib's serialization of the network (dlib/serialize.h,
   dlib/float_details.h, dlib/dnn/core.h, layers.h, input.h, tensor.h). The reader walks the exact layer sequence
   of dlib's `anet_type` and checks every layer's type string, shape, stride and padding, so a different file fails
   loudly instead of loading garbage.
2. `DlibFaceResNet`: dlib's `anet_type` (dnn_face_recognition_ex.cpp) as an `nn.Module`. Input: N×3×150×150 RGB
   chips with values in [0, 255] (dlib's uint8 pixels, as floats); output: the raw 128-d output of the last
   fc layer, which is what dlib returns (`loss_metric` does not normalise it).
3. `extract_face_chips`: dlib's `get_face_chip(img, shape_5_points, size=150, padding=0.25)`, i.e. the similarity
   transform of `get_face_chip_details` plus `extract_image_chips`' pyramid_down<2> anti-aliasing, rebuilt with
   conv2d / `F.affine_grid` / `F.grid_sample` (bilinear) so gradients reach the input image.

Convention everywhere: images are float tensors N×3×H×W in RGB order with values in [0, 255]; `embed` takes a
`value_range` to map other ranges (the trainer's tensors are RGB in [-1, 1]). Landmarks are N×5×2 pixel x/y as
dlib's `shape_predictor_5_face_landmarks` returns them; they only place the crop (no gradient flows to them).

dlib details that matter and are reproduced here:
- con and pooling default padding is `stride != 1 ? 0 : size/2`: the 7x7/2 stem conv, the 3x3/2 max pool, the
  3x3/2 convs and the 2x2/2 average pools of the downsampling blocks are all unpadded (150 -> 72 -> 35 -> 17 -> 8).
- `add_prev` of tensors of different shapes zero-pads both to the larger size, aligned at channel 0 and the
  top-left pixel. This pads the skip path's missing channels, and in the 8->3 downsampling block the 4x4 average
  pooled skip is larger than the 3x3 conv path, so the network continues at 4x4 (and the last block gives 2x2).
- Input normalisation: (pixel - mean_rgb) / 256 with the per-channel means stored in the file.
- dlib samples the chip from an image pyramid (5x5 binomial filter, stride 2) when the face is more than about
  twice the chip size, cropped to a grown box around the face; its pyramid-level coordinates use
  p/2 - (1.25, 0.75). `extract_face_chips` follows the same steps. dlib also truncates the chip and each pyramid
  level to uint8: `quantize=True` reproduces that (dlib's exact pixels); the default stays smooth for training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from model.dlib_models import FACE_RECOGNITION_RESNET, model_file

CHIP_SIZE = 150
CHIP_PADDING = 0.25
EMBEDDING_DIM = 128

# dlib's 5-point mean face (get_face_chip_details, dlib/image_transforms/interpolation.h) as x/y fractions of the
# unpadded chip, in shape_predictor_5_face_landmarks order: outer and inner corner of the eye on the image's right,
# outer and inner corner of the eye on the image's left, bottom of the nose.
MEAN_FACE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)

# (channels, residual blocks, first block downsamples) per level, input side first: alevel4 ... alevel0.
LEVELS: tuple[tuple[int, int, bool], ...] = (
    (32, 3, False),
    (64, 4, True),
    (128, 3, True),
    (256, 3, True),
    (256, 1, True),
)
STEM_CHANNELS = 32


# ---------------------------------------------------------------------------------------------------- the network


class _Affine(nn.Module):
    """dlib's affine_ layer in CONV_MODE: a per-channel scale and shift (a frozen batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev (tt::add): the sum of two N×C×H×W tensors, each zero-padded at the end of the channel,
    row and column axes to the larger of the two shapes."""
    shape = [max(sa, sb) for sa, sb in zip(a.shape[1:], b.shape[1:], strict=True)]

    def pad(x: torch.Tensor) -> torch.Tensor:
        c, h, w = x.shape[1:]
        if (c, h, w) == tuple(shape):
            return x
        return F.pad(x, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

    return pad(a) + pad(b)


class _ResidualBlock(nn.Module):
    """dlib's `ares<N>` (stride 1, identity skip) or `ares_down<N>` (stride 2, 2x2 average-pooled skip):
    relu(affine(con3x3(relu(affine(con3x3(x))))) + skip(x)), added with dlib's zero padding."""

    def __init__(self, in_channels: int, out_channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        stride = 2 if down else 1
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=0 if down else 1)
        self.affine1 = _Affine(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.affine2 = _Affine(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_padded(skip, y))


class DlibFaceResNet(nn.Module):
    """dlib's face-recognition ResNet (29 conv layers, 128-d output). Call it on N×3×150×150 RGB chips in
    [0, 255] (see `extract_face_chips`), or use `embed` on whole images with 5-point landmarks. Build it with
    `load_dlib_face_resnet`; a bare instance has dlib's layer shapes but PyTorch's random initialisation."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean_rgb", torch.tensor([122.782, 117.001, 104.298]))
        self.conv = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2)
        self.affine = _Affine(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        channels = STEM_CHANNELS
        for out_channels, count, down in LEVELS:
            for i in range(count):
                blocks.append(_ResidualBlock(channels, out_channels, down and i == 0))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, EMBEDDING_DIM, bias=False)

    def convs(self) -> list[nn.Conv2d]:
        """The conv layers in forward order (the order dlib stores them in, input side first)."""
        return [self.conv] + [c for b in self.blocks for c in (b.conv1, b.conv2)]

    def affines(self) -> list[_Affine]:
        return [self.affine] + [a for b in self.blocks for a in (b.affine1, b.affine2)]

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        if chips.ndim != 4 or tuple(chips.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"expected N×3×{CHIP_SIZE}×{CHIP_SIZE} RGB chips, got {tuple(chips.shape)}")
        x = (chips - self.mean_rgb[:, None, None]) / 256.0
        x = F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    def embed(
        self,
        images: torch.Tensor,
        landmarks: torch.Tensor | np.ndarray,
        value_range: tuple[float, float] = (0.0, 255.0),
        quantize: bool = False,
    ) -> torch.Tensor:
        """128-d embeddings of the faces in N×3×H×W RGB `images` (values in `value_range`, e.g. (-1, 1) for the
        trainer's tensors) placed by N×5×2 dlib 5-point `landmarks`; the differentiable counterpart of
        `face_recognition_model_v1.compute_face_descriptor(img, shape)`. `quantize`: see `extract_face_chips`."""
        low, high = value_range
        pixels = (images - low) * (255.0 / (high - low))
        return self(extract_face_chips(pixels, landmarks, quantize=quantize))


# ---------------------------------------------------------------------------------------------------- the reader


class _Layer(NamedTuple):
    """One layer of dlib's network definition. kind: con, affine, relu, max_pool, avg_pool, avg_pool_everything,
    fc, tag, skip or add_prev; n: filters / outputs / tag id; size and stride: conv or pool window."""

    kind: str
    n: int = 0
    size: int = 0
    stride: int = 1


def _block(n: int, stride: int) -> list[_Layer]:
    # block<N,BN,stride,SUBNET> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [_Layer("con", n, 3, stride), _Layer("affine"), _Layer("relu"), _Layer("con", n, 3, 1), _Layer("affine")]


def _ares(n: int) -> list[_Layer]:
    # relu<add_prev1<block<N,BN,1,tag1<SUBNET>>>>
    return [_Layer("tag", 1), *_block(n, 1), _Layer("add_prev", 1), _Layer("relu")]


def _ares_down(n: int) -> list[_Layer]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>>
    tail = [_Layer("tag", 2), _Layer("skip", 1), _Layer("avg_pool", 0, 2, 2), _Layer("add_prev", 2), _Layer("relu")]
    return [_Layer("tag", 1), *_block(n, 2), *tail]


def anet_layers() -> list[_Layer]:
    """dlib's `anet_type` below its loss layer, input side first (the input layer itself excluded)."""
    layers = [_Layer("con", STEM_CHANNELS, 7, 2), _Layer("affine"), _Layer("relu"), _Layer("max_pool", 0, 3, 2)]
    for channels, count, down in LEVELS:
        for i in range(count):
            layers += _ares_down(channels) if down and i == 0 else _ares(channels)
    return [*layers, _Layer("avg_pool_everything", 0, 0, 1), _Layer("fc", EMBEDDING_DIM)]


class DlibFormatError(ValueError):
    """The file is not the dlib network this module describes (or not a dlib serialization at all)."""


# float_details' exponent values for the special floats (dlib/float_details.h)
_FLOAT_SPECIALS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class _Reader:
    """Sequential reader of dlib's serialization primitives (dlib/serialize.h)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise DlibFormatError(f"unexpected end of file at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def int(self) -> int:
        """An integer: one byte with the byte count (low 4 bits) and sign (bit 7), then little-endian bytes."""
        head = self._take(1)[0]
        value = int.from_bytes(self._take(head & 0x0F), "little")
        return -value if head & 0x80 else value

    def float(self) -> float:
        """A float_details: int64 mantissa and int16 exponent, value = mantissa * 2**exponent."""
        mantissa, exponent = self.int(), self.int()
        if exponent >= min(_FLOAT_SPECIALS):
            return _FLOAT_SPECIALS.get(exponent, math.nan)
        return math.ldexp(mantissa, exponent)

    def string(self) -> str:
        return self._take(self.int()).decode("latin-1")

    def bool(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"expected a serialized bool at byte {self.pos - 1}, got {char!r}")
        return char == b"1"

    def tensor(self) -> np.ndarray:
        """A tensor: version, n, k, nr, nc, then the values (v2: raw little-endian float32; v1: float_details)."""
        version = self.int()
        shape = tuple(self.int() for _ in range(4))
        count = math.prod(shape)
        if version == 2:
            values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        elif version == 1:
            values = np.array([self.float() for _ in range(count)], dtype=np.float32)
        else:
            raise DlibFormatError(f"unknown tensor serialization version {version}")
        return values.reshape(shape)

    def alias_tensor(self) -> tuple[int, ...]:
        """An alias_tensor (a shaped view into a layer's parameter tensor): version 1, n, k, nr, nc."""
        self.expect_int(1, "alias_tensor version")
        return tuple(self.int() for _ in range(4))

    def expect_int(self, expected: int, what: str) -> None:
        value = self.int()
        if value != expected:
            raise DlibFormatError(f"{what}: expected {expected}, found {value} (byte {self.pos})")

    def expect_ints(self, layer: str, **fields: int) -> None:
        """Integers stored in the given order, each checked against its expected value."""
        for name, expected in fields.items():
            self.expect_int(expected, f"{layer} {name}")

    def expect_string(self, expected: str) -> None:
        value = self.string()
        if value != expected:
            raise DlibFormatError(f"expected layer {expected!r}, found {value!r} (byte {self.pos})")


@dataclass
class DlibResNetWeights:
    """What `read_dlib_face_resnet` extracts: input means, conv (weight OIHW, bias) and affine (scale, shift)
    pairs in forward order, and the fc matrix as dlib stores it (inputs × outputs)."""

    mean_rgb: tuple[float, float, float]
    convs: list[tuple[np.ndarray, np.ndarray]]
    affines: list[tuple[np.ndarray, np.ndarray]]
    fc: np.ndarray


def _dlib_padding(size: int, stride: int) -> int:
    """The default padding of dlib's con_, max_pool_ and avg_pool_ templates."""
    return 0 if stride != 1 else size // 2


def _read_con(r: _Reader, layer: _Layer) -> tuple[np.ndarray, np.ndarray]:
    r.expect_string("con_4")
    params = r.tensor().ravel()
    size, stride, padding = layer.size, layer.stride, _dlib_padding(layer.size, layer.stride)
    r.expect_ints("con", num_filters=layer.n, nr=size, nc=size, stride_y=stride, stride_x=stride)
    r.expect_ints("con", padding_y=padding, padding_x=padding)
    filters, biases = r.alias_tensor(), r.alias_tensor()
    if filters[0] != layer.n or filters[2:] != (layer.size, layer.size) or biases != (1, layer.n, 1, 1):
        raise DlibFormatError(f"con: unexpected filter/bias shapes {filters} / {biases}")
    if params.size != math.prod(filters) + layer.n:
        raise DlibFormatError(f"con: {params.size} parameters do not fit filters {filters}")
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    return params[: math.prod(filters)].reshape(filters), params[math.prod(filters) :]


def _read_affine(r: _Reader) -> tuple[np.ndarray, np.ndarray]:
    r.expect_string("affine_")
    params = r.tensor().ravel()
    gamma, beta = r.alias_tensor(), r.alias_tensor()
    r.expect_int(0, "affine mode (CONV_MODE)")
    channels = gamma[1]
    if gamma != beta or gamma != (1, channels, 1, 1) or params.size != 2 * channels:
        raise DlibFormatError(f"affine: unexpected shapes {gamma} / {beta} for {params.size} parameters")
    return params[:channels], params[channels:]


def _read_pool(r: _Reader, name: str, size: int, stride: int) -> None:
    r.expect_string(name)
    padding = _dlib_padding(size, stride)
    r.expect_ints(name, nr=size, nc=size, stride_y=stride, stride_x=stride, padding_y=padding, padding_x=padding)


def _read_fc(r: _Reader, layer: _Layer) -> np.ndarray:
    r.expect_string("fc_2")
    r.expect_int(layer.n, "fc num_outputs")
    num_inputs = r.int()
    params = r.tensor().ravel()
    weights = r.alias_tensor()
    r.alias_tensor()  # biases: unused without bias
    r.expect_int(1, "fc bias mode (FC_NO_BIAS)")
    for _ in range(4):
        r.float()
    if weights[:2] != (num_inputs, layer.n) or params.size != num_inputs * layer.n:
        raise DlibFormatError(f"fc: unexpected weight shape {weights} for {params.size} parameters")
    return params.reshape(num_inputs, layer.n)


def _read_input(r: _Reader) -> tuple[float, float, float]:
    r.expect_string("input_rgb_image_sized")
    mean_rgb = (r.float(), r.float(), r.float())
    r.expect_ints("input", rows=CHIP_SIZE, columns=CHIP_SIZE)
    return mean_rgb


def _skip_layer_state(r: _Reader) -> None:
    """add_layer's bookkeeping after the layer details: 3 bools and 3 (normally empty) tensors."""
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()


def _read_headers(r: _Reader, layers: list[_Layer]) -> int:
    """The nesting prefix: the version of every wrapper from the top layer down. Returns the version of the
    bottom add_layer (the one holding the input layer), which decides its trailing fields."""
    for layer in reversed(layers[1:]):
        expected = 1 if layer.kind in ("tag", "skip") else 2
        r.expect_int(expected, f"{layer.kind} layer version")
    bottom_version = r.int()
    if bottom_version not in (2, 3):
        raise DlibFormatError(f"unknown input add_layer version {bottom_version}")
    return bottom_version


def read_dlib_face_resnet(path: str | Path | None = None) -> DlibResNetWeights:
    """Parse dlib_face_recognition_resnet_model_v1.dat (default: the copy shipped by face-recognition-models).

    dlib serializes a network as: the loss layer (version, `loss_metric_2`, margin, distance threshold); then,
    since every layer serializes its subnetwork before its own details, the versions of all wrappers from the
    top down; the input layer; and finally each layer's details, input side first."""
    r = _Reader(Path(path or model_file(FACE_RECOGNITION_RESNET)).read_bytes())
    r.expect_int(1, "add_loss_layer version")
    r.expect_string("loss_metric_2")
    for _ in range(2):  # margin, distance threshold
        r.float()
    layers = anet_layers()
    bottom_version = _read_headers(r, layers)
    mean_rgb = _read_input(r)
    convs, affines, fc = [], [], np.empty((0, EMBEDDING_DIM), dtype=np.float32)
    for i, layer in enumerate(layers):
        if layer.kind in ("tag", "skip"):
            continue
        if layer.kind == "con":
            convs.append(_read_con(r, layer))
        elif layer.kind == "affine":
            affines.append(_read_affine(r))
        elif layer.kind in ("relu", "add_prev"):
            r.expect_string(f"{layer.kind}_")
        elif layer.kind in ("max_pool", "avg_pool", "avg_pool_everything"):
            _read_pool(r, "max_pool_2" if layer.kind == "max_pool" else "avg_pool_2", layer.size, layer.stride)
        else:
            fc = _read_fc(r, layer)
        _skip_layer_state(r)
        if i == 0 and bottom_version == 3:
            r.int()  # sample_expansion_factor
    if r.pos != len(r.data):
        raise DlibFormatError(f"{len(r.data) - r.pos} unread bytes after the network")
    return DlibResNetWeights(mean_rgb=mean_rgb, convs=convs, affines=affines, fc=fc)


def _copy(param: torch.Tensor, value: np.ndarray, what: str) -> None:
    if tuple(param.shape) != value.shape:
        raise DlibFormatError(f"{what}: file has shape {value.shape}, the network needs {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(value))


def load_weights(net: DlibFaceResNet, weights: DlibResNetWeights) -> DlibFaceResNet:
    """Copy parsed dlib weights into `net` (shapes checked)."""
    convs, affines = net.convs(), net.affines()
    if len(convs) != len(weights.convs) or len(affines) != len(weights.affines):
        raise DlibFormatError("the file's layer counts do not match DlibFaceResNet")
    for i, (conv, (w, b)) in enumerate(zip(convs, weights.convs, strict=True)):
        _copy(conv.weight, w, f"conv {i} weight")
        _copy(conv.bias, b, f"conv {i} bias")
    for i, (affine, (g, b)) in enumerate(zip(affines, weights.affines, strict=True)):
        _copy(affine.weight, g, f"affine {i} scale")
        _copy(affine.bias, b, f"affine {i} shift")
    _copy(net.fc.weight, np.ascontiguousarray(weights.fc.T), "fc weight")
    _copy(net.mean_rgb, np.array(weights.mean_rgb, dtype=np.float32), "input means")
    return net


def load_dlib_face_resnet(
    path: str | Path | None = None, device: str | torch.device = "cpu", frozen: bool = True
) -> DlibFaceResNet:
    """DlibFaceResNet with the weights of dlib's .dat file (default: the shipped one). Frozen (no parameter
    requires grad) and in eval mode unless `frozen=False`; the network has no train/eval-dependent layers."""
    net = load_weights(DlibFaceResNet(), read_dlib_face_resnet(path))
    if frozen:
        net.requires_grad_(False)
    return net.eval().to(device)


# ---------------------------------------------------------------------------------------------------- face chips


@dataclass(frozen=True)
class ChipDetails:
    """dlib's chip_details: the chip's source rectangle (left, top, right, bottom, as a dlib drectangle), its
    rotation in radians and its size."""

    rect: tuple[float, float, float, float]
    angle: float
    size: int


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991, as dlib's find_similarity_transform) mapping src points onto dst
    points; returns the 2x3 matrix [c*R | t]."""
    mean_src, mean_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mean_src, dst - mean_dst
    sigma_src = (src_c**2).sum(axis=1).mean()
    cov = dst_c.T @ src_c / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.ones(2)
    if np.linalg.det(cov) < 0 or (np.linalg.det(cov) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        s[1 if d[1] < d[0] else 0] = -1
    rotation = u @ np.diag(s) @ vt
    scale = (d * s).sum() / sigma_src if sigma_src != 0 else 1.0
    return np.hstack([scale * rotation, (mean_dst - scale * rotation @ mean_src)[:, None]])


def face_chip_details(landmarks: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> ChipDetails:
    """dlib.get_face_chip_details for one 5×2 set of shape_predictor_5_face_landmarks points."""
    template = (padding + MEAN_FACE_5) / (2 * padding + 1) * size
    tform = similarity_transform(template, np.asarray(landmarks, dtype=np.float64))
    p = tform[:, 0]  # the image of the unit x vector
    angle, scale = math.atan2(p[1], p[0]), math.hypot(p[0], p[1])
    cx, cy = tform[:, :2] @ np.array([size / 2.0, size / 2.0]) + tform[:, 2]
    half = (size * scale - 1) / 2  # dlib's centered_drect: a drectangle's width is right - left + 1
    return ChipDetails(rect=(cx - half, cy - half, cx + half, cy + half), angle=angle, size=size)


def _rect_down(rect: tuple[float, ...]) -> tuple[float, ...]:
    """pyramid_down<2>::rect_down: p/2 - (1.25, 0.75) applied to both corners."""
    left, top, right, bottom = rect
    return (left / 2 - 1.25, top / 2 - 0.75, right / 2 - 1.25, bottom / 2 - 0.75)


def _rect_area(rect: tuple[float, ...]) -> float:
    left, top, right, bottom = rect
    return (right - left + 1) * (bottom - top + 1)


def _rotate(center: np.ndarray, point: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    x, y = point - center
    return np.array([c * x - s * y, s * x + c * y]) + center


def _rotated_corners(rect: tuple[float, ...], angle: float) -> np.ndarray:
    """tl, tr, bl, br corners of `rect` rotated by `angle` about its centre (4×2)."""
    left, top, right, bottom = rect
    center = np.array([(left + right) / 2, (top + bottom) / 2])
    corners = [(left, top), (right, top), (left, bottom), (right, bottom)]
    return np.stack([_rotate(center, np.array(p, dtype=np.float64), angle) for p in corners])


@dataclass(frozen=True)
class ChipSampling:
    """How dlib's extract_image_chips samples one chip: crop the image to `crop` (left, top, right, bottom,
    inclusive pixels), apply pyramid_down<2> `levels` times, then sample bilinearly at `chip_to_source` (2x3,
    chip pixel x/y -> pixel x/y of that pyramid level)."""

    crop: tuple[int, int, int, int]
    levels: int
    chip_to_source: np.ndarray


def _pyramid_depth(rect: tuple[float, ...], chip_area: int) -> int:
    """How often dlib halves the image before sampling: as long as the halved source rectangle still has more
    pixels than the chip (so the chip is sampled from a level where the face is 1-2x the chip size)."""
    depth = 0
    while _rect_area(_rect_down(rect)) > chip_area:
        rect = _rect_down(rect)
        depth += 1
    return depth


def _crop_box(details: ChipDetails, depth: int, height: int, width: int) -> tuple[int, int, int, int]:
    """extract_image_chips' bounding box: the rotated chip rectangle grown by a border that doubles (+2) per
    pyramid level, clipped to the image and rounded to whole pixels."""
    grow = 2.0
    for _ in range(depth):
        grow = grow * 2 + 2
    corners = _rotated_corners(details.rect, details.angle)
    (left, top), (right, bottom) = corners.min(axis=0) - grow, corners.max(axis=0) + grow
    box = (max(left, 0), max(top, 0), min(right, width - 1), min(bottom, height - 1))
    left, top, right, bottom = (math.floor(v + 0.5) for v in box)  # drectangle -> rectangle rounding
    return left, top, right, bottom


def chip_sampling(details: ChipDetails, height: int, width: int) -> ChipSampling:
    """extract_image_chips' plan for one chip from an image of the given size: crop, pyramid depth and affine
    map (dlib/image_transforms/interpolation.h)."""
    levels = _pyramid_depth(details.rect, details.size**2)
    crop = _crop_box(details, levels, height, width)
    left, top, right, bottom = details.rect
    rect = (left - crop[0], top - crop[1], right - crop[0], bottom - crop[1])
    for _ in range(levels):
        rect = _rect_down(rect)
    tl, tr, bl, _ = _rotated_corners(rect, details.angle)
    last = details.size - 1
    chip_to_source = np.stack([(tr - tl) / last, (bl - tl) / last, tl], axis=1)
    return ChipSampling(crop=crop, levels=levels, chip_to_source=chip_to_source)


def pyramid_down(images: torch.Tensor) -> torch.Tensor:
    """dlib's pyramid_down<2> on N×C×H×W floats: separable [1 4 6 4 1]/16 filter, unpadded, stride 2; output
    pixel (r, c) is centred on input pixel (2r + 2, 2c + 2). (dlib also truncates each level to uint8.)"""
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=images.dtype, device=images.device)
    kernel = (taps[:, None] * taps[None, :] / 256.0)[None, None]
    n, c, h, w = images.shape
    return F.conv2d(images.reshape(n * c, 1, h, w), kernel, stride=2).reshape(n, c, (h - 3) // 2, (w - 3) // 2)


def _as_uint8(x: torch.Tensor) -> torch.Tensor:
    """dlib's conversion to uint8 pixels (clamp, truncate) in the forward pass, identity gradient (straight-
    through). The tiny offset absorbs rounding error of values that are integers in dlib's arithmetic."""
    return x + (torch.floor(x.clamp(0, 255) + 1e-6) - x).detach()


def _normalised_theta(chip_to_source: np.ndarray, size: int, height: int, width: int) -> np.ndarray:
    """`chip_to_source` (pixels) as affine_grid's theta: normalised chip -> normalised source coordinates, with
    align_corners=True (-1 and 1 are the centres of the first and last pixels)."""
    half = (size - 1) / 2
    from_normalised = np.array([[half, 0, half], [0, half, half], [0, 0, 1]])
    to_normalised = np.array([[2 / (width - 1), 0, -1], [0, 2 / (height - 1), -1], [0, 0, 1]])
    return (to_normalised @ np.vstack([chip_to_source, [0, 0, 1]]) @ from_normalised)[:2]


def _sample_chip(image: torch.Tensor, plan: ChipSampling, size: int, quantize: bool) -> torch.Tensor:
    left, top, right, bottom = plan.crop
    source = image[None, :, top : bottom + 1, left : right + 1]
    if quantize:  # dlib interpolates in double; float32 error would flip some of the truncations
        source = source.double()
    for _ in range(plan.levels):
        source = pyramid_down(source)
        source = _as_uint8(source) if quantize else source
    h, w = source.shape[-2:]
    theta = torch.as_tensor(_normalised_theta(plan.chip_to_source, size, h, w), dtype=source.dtype)
    grid = F.affine_grid(theta[None].to(source.device), [1, source.shape[1], size, size], align_corners=True)
    chip = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    chip = _as_uint8(chip).to(image.dtype) if quantize else chip
    return chip * torch.as_tensor(_inside_mask(plan.chip_to_source, size, h, w), dtype=chip.dtype, device=chip.device)


def _inside_mask(chip_to_source: np.ndarray, size: int, height: int, width: int) -> np.ndarray:
    """dlib's interpolate_bilinear gives black unless all 4 neighbours are inside the image, i.e. unless
    0 <= x < width - 1 and 0 <= y < height - 1 (grid_sample would blend with zeros instead)."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    x = chip_to_source[0, 0] * cols + chip_to_source[0, 1] * rows + chip_to_source[0, 2]
    y = chip_to_source[1, 0] * cols + chip_to_source[1, 1] * rows + chip_to_source[1, 2]
    return (x >= 0) & (x < width - 1) & (y >= 0) & (y < height - 1)


def extract_face_chips(
    images: torch.Tensor,
    landmarks: torch.Tensor | np.ndarray,
    size: int = CHIP_SIZE,
    padding: float = CHIP_PADDING,
    quantize: bool = False,
) -> torch.Tensor:
    """dlib.get_face_chip(img, shape, size, padding) for a batch: N×3×H×W RGB images in [0, 255] and N×5×2
    5-point landmarks (pixel x/y) -> N×3×size×size chips, differentiable w.r.t. the images.

    dlib truncates the chip and each pyramid level to uint8, so its chips are on average 0.5 (0.5 per pyramid
    level more) below these smooth ones. `quantize=True` reproduces that truncation with straight-through
    gradients: dlib's exact pixels (given integer-valued images), at the price of a piecewise-constant
    forward pass; keep it off for a training loss."""
    if images.ndim != 4:
        raise ValueError(f"expected N×C×H×W images, got shape {tuple(images.shape)}")
    points = landmarks.detach().cpu().double().numpy() if torch.is_tensor(landmarks) else np.asarray(landmarks)
    if points.shape != (images.shape[0], 5, 2):
        raise ValueError(f"expected {images.shape[0]}×5×2 landmarks, got shape {points.shape}")
    height, width = images.shape[-2:]
    chips = []
    for image, shape in zip(images, points.astype(np.float64), strict=True):
        plan = chip_sampling(face_chip_details(shape, size, padding), height, width)
        chips.append(_sample_chip(image, plan, size, quantize))
    return torch.stack(chips)
