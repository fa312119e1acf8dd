"""A small model zoo for the demo, the `weft train` command and quick experiments.

Every model takes NCHW float images (or any shape, for the MLP, which flattens) and returns
class logits; all work on 28x28 and 32x32 inputs (they end in global pooling).

Extending: `weft train` also accepts an import path "package.module:factory" for your own model;
`register_model(name, factory)` makes a name available to `build_model` and configs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "MLP",
    "MODELS",
    "AirbenchNet",
    "MirrorAveraged",
    "ResNet",
    "SimpleCNN",
    "build_model",
    "register_model",
]


class MLP(nn.Sequential):
    """Flatten, then `hidden` fully connected ReLU layers, then a linear classifier;
    `in_features` is the flattened input size (784 for 28x28x1, 3072 for 32x32x3)."""

    def __init__(
        self,
        in_features: int = 784,
        num_classes: int = 10,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.0,
    ):
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class SimpleCNN(nn.Sequential):
    """Stages of conv-BN-ReLU halving the resolution, then global average pooling and a linear
    classifier; `widths` sets the channels of each stage."""

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, widths: Sequence[int] = (32, 64, 128)
    ):
        layers: list[nn.Module] = []
        cin = in_channels
        for i, w in enumerate(widths):
            layers += [_conv_bn(cin, w), _conv_bn(w, w)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
        super().__init__(*layers)


class _Residual(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, cout, stride),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Sequential):
    """A small ResNet for 28-32 px images: a 3x3 stem (no early downsampling), stages of
    residual blocks (`blocks[i]` blocks of `widths[i]` channels, each later stage halving the
    resolution), global average pooling, a linear classifier."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128),
        blocks: Sequence[int] = (2, 2, 2),
    ):
        if len(widths) != len(blocks):
            raise ValueError(
                f"ResNet: widths {list(widths)} and blocks {list(blocks)} need the same length"
            )
        layers: list[nn.Module] = [_conv_bn(in_channels, widths[0])]
        cin = widths[0]
        for stage, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            for b in range(n):
                layers.append(_Residual(cin, w, 2 if stage > 0 and b == 0 else 1))
                cin = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
        super().__init__(*layers)


def _airbench_block(cin: int, cout: int) -> nn.Sequential:
    """conv, 2x2 max pool, BN, GELU, conv, BN, GELU: one stage, halving the resolution."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(cout),
        nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.GELU(),
    )


class AirbenchNet(nn.Sequential):
    """The layout of the fast CIFAR-10 speedruns (Keller Jordan's airbench, hlb-cifar10) for
    28-32 px images; `widths` are the three blocks' channels (airbench94's by default).

    A 2x2 convolution to 8 x `in_channels` features (-1 px), three conv-pool-BN-GELU blocks,
    a 3x3 max pool and a linear classifier whose logits are scaled by 1/9 (a softer start).
    Each 3x3 convolution starts with its first filters as the identity (airbench's "dirac"
    initialization: an implicit residual). `whiten_from(images)` fixes the first layer to the
    whitening transform of the images' 2x2 patches, which speeds up early training; without it
    the layer is learned.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        widths: Sequence[int] = (64, 256, 256),
    ):
        if len(widths) != 3:
            raise ValueError(f"AirbenchNet: widths {list(widths)} must be 3 channel counts")
        c1, c2, c3 = widths
        patch = 4 * in_channels  # the values in one 2x2 patch
        super().__init__(
            nn.Conv2d(in_channels, 2 * patch, 2),
            nn.GELU(),
            _airbench_block(2 * patch, c1),
            _airbench_block(c1, c2),
            _airbench_block(c2, c3),
            nn.AdaptiveMaxPool2d(1),  # over 3x3 (from 28-32 px) or 2x2 (from 24-27 px)
            nn.Flatten(),
            nn.Linear(c3, num_classes, bias=False),
        )
        self.logit_scale = 1 / 9
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
                nn.init.dirac_(conv.weight.data[: conv.in_channels])

    def whiten_from(self, images: torch.Tensor, eps: float = 5e-4) -> AirbenchNet:
        """Fix the first layer to whiten the 2x2 patches of `images` (N, C, H, W floats,
        normalized as the model will see them): the eigenvectors of the patch covariance
        scaled by 1/sqrt(eigenvalue), and their negatives (so that the GELU loses nothing)."""
        conv = self[0]
        if images.ndim != 4 or images.shape[1] != conv.in_channels:
            raise ValueError(
                f"whiten_from: expected images of shape (N, {conv.in_channels}, H, W), "
                f"got {tuple(images.shape)}"
            )
        patches = nn.functional.unfold(images.double(), 2).transpose(1, 2)  # N, L, C*2*2
        values, vectors = torch.linalg.eigh(torch.cov(patches.reshape(-1, patches.shape[-1]).T))
        weights = (vectors.T / (values + eps).sqrt()[:, None]).reshape(-1, conv.in_channels, 2, 2)
        with torch.no_grad():
            conv.weight.copy_(torch.cat([weights, -weights]))
        conv.weight.requires_grad_(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.logit_scale


class MirrorAveraged(nn.Module):
    """Test-time augmentation as part of the model: in eval mode the mean of the logits of the
    images and of their mirror images; in training mode the wrapped model alone."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.model(x)
        return (self.model(x) + self.model(x.flip(-1))) / 2


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "simple_cnn": SimpleCNN,
    "resnet": ResNet,
    "airbench": AirbenchNet,
}


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make `name` buildable by `build_model` (and usable as `model.name` in configs)."""
    MODELS[name] = factory


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a zoo model by name, or a user model from an import path "package.module:factory".

    Keyword arguments go to the constructor; a wrong one raises naming the model and listing the
    arguments it accepts.
    """
    if ":" in name:
        factory = _import(name)
    elif name in MODELS:
        factory = MODELS[name]
    else:
        raise ValueError(
            f"unknown model {name!r}; zoo models are {sorted(MODELS)}, or give an import path "
            "like 'mypackage.models:MyNet'"
        )
    try:
        model = factory(**kwargs)
    except TypeError as err:
        import inspect

        try:
            accepted = list(inspect.signature(factory).parameters)
        except (TypeError, ValueError):
            accepted = ["(unknown)"]
        raise TypeError(f"model {name!r}: {err}; it accepts {accepted}") from None
    if not isinstance(model, nn.Module):
        raise TypeError(f"model {name!r} built a {type(model).__name__}, not a torch nn.Module")
    return model


def _import(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"cannot import module {module_name!r} for model {path!r}: {err}"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"module {module_name!r} has no callable {attr!r} (model {path!r})")
    return factory
