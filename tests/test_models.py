"""The model zoo: shapes on 28x28 and 32x32 inputs, building by name or import path, errors."""

from __future__ import annotations

import pytest
import torch

from weft.models import MLP, MODELS, ResNet, SimpleCNN, build_model, register_model


@pytest.mark.parametrize("name", ["simple_cnn", "resnet"])
@pytest.mark.parametrize("size", [28, 32])
def test_conv_models_on_small_images(name, size):
    model = build_model(name, in_channels=1 if size == 28 else 3, num_classes=7)
    out = model(torch.randn(2, 1 if size == 28 else 3, size, size))
    assert out.shape == (2, 7)
    out.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in model.parameters())


def test_mlp_flattens():
    model = build_model("mlp", in_features=3 * 32 * 32, hidden=[64], num_classes=4, dropout=0.1)
    assert isinstance(model, MLP) and model(torch.randn(5, 3, 32, 32)).shape == (5, 4)


def test_resnet_downsamples_per_stage():
    model = ResNet(3, 10, widths=(8, 16), blocks=(1, 1))
    features = torch.nn.Sequential(*list(model)[:-3])(torch.randn(1, 3, 32, 32))
    assert features.shape == (1, 16, 16, 16)
    with pytest.raises(ValueError, match=r"widths \[8, 16\] and blocks \[1\] need the same length"):
        ResNet(widths=(8, 16), blocks=(1,))


def test_import_path_and_registry(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "def tiny(num_classes=2):\n    return torch.nn.Linear(4, num_classes)\n"
        "def not_a_module():\n    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert build_model("my_models:tiny", num_classes=5).out_features == 5
    with pytest.raises(TypeError, match=r"model 'my_models:not_a_module' built a int, not a torch"):
        build_model("my_models:not_a_module")
    with pytest.raises(ValueError, match=r"module 'my_models' has no callable 'missing'"):
        build_model("my_models:missing")
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_pkg' for model"):
        build_model("no_such_pkg:Net")
    monkeypatch.setitem(MODELS, "tiny_cnn", lambda **kw: SimpleCNN(widths=(4,), **kw))
    register_model("tiny_cnn", MODELS["tiny_cnn"])
    assert isinstance(build_model("tiny_cnn", num_classes=3), SimpleCNN)


def test_bad_names_and_arguments():
    with pytest.raises(
        ValueError, match=r"unknown model 'resnet50'; zoo models are \['mlp', 'resnet'"
    ):
        build_model("resnet50")
    with pytest.raises(
        TypeError,
        match=r"model 'simple_cnn': .*'width'.*; it accepts \['in_channels', 'num_classes', 'widths'\]",
    ):
        build_model("simple_cnn", width=3)
