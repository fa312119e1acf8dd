"""The model zoo: shapes on 28x28 and 32x32 inputs, building by name or import path, errors."""

from __future__ import annotations

import pytest
import torch

from weft.models import (
    MLP,
    MODELS,
    AirbenchNet,
    MirrorAveraged,
    ResNet,
    SimpleCNN,
    build_model,
    register_model,
)


@pytest.mark.parametrize("name", ["simple_cnn", "resnet", "airbench"])
@pytest.mark.parametrize("size", [28, 32])
def test_conv_models_on_small_images(name, size):
    model = build_model(name, in_channels=1 if size == 28 else 3, num_classes=7)
    out = model(torch.randn(2, 1 if size == 28 else 3, size, size))
    assert out.shape == (2, 7)
    out.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in model.parameters())


def test_airbench_whitening_layer_whitens_patches():
    generator = torch.Generator().manual_seed(0)
    # correlated channels and neighbouring pixels, as in real images
    images = torch.randn(200, 1, 32, 32, generator=generator).repeat(1, 3, 1, 1)
    images = images + 0.3 * torch.randn(200, 3, 32, 32, generator=generator)
    images = images + images.roll(1, -1)
    net = AirbenchNet(widths=(8, 32, 32)).whiten_from(images)
    with torch.no_grad():
        features = torch.nn.functional.conv2d(images, net[0].weight)  # no bias
    assert features.shape[1] == 24  # 12 patch values, each with its negative
    positive = features[:, :12].permute(1, 0, 2, 3).reshape(12, -1)
    # unit variance and no correlation (eps keeps the variances just below 1)
    torch.testing.assert_close(torch.cov(positive), torch.eye(12), atol=0.02, rtol=0)
    torch.testing.assert_close(features[:, 12:], -features[:, :12])
    assert not net[0].weight.requires_grad and net[0].bias.requires_grad
    with pytest.raises(
        ValueError, match=r"expected images of shape \(N, 3, H, W\), got \(200, 1, 32, 32\)"
    ):
        net.whiten_from(images[:, :1])


def test_airbench_convolutions_start_as_identity():
    net = AirbenchNet(widths=(8, 32, 32))
    second = net[3][4]  # block 2's second convolution: 32 -> 32 channels
    x = torch.randn(2, 32, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(second(x), x)
        widening = net[3][0](x[:, :8])  # block 2's first convolution: 8 -> 32 channels
    torch.testing.assert_close(widening[:, :8], x[:, :8])  # its first 8 filters pass through
    assert widening[:, 8:].abs().sum() > 0  # the others keep their random initialization
    with pytest.raises(ValueError, match=r"widths \[8, 32\] must be 3 channel counts"):
        AirbenchNet(widths=(8, 32))


def test_mirror_averaged_is_mirror_invariant_in_eval_only():
    model = MirrorAveraged(AirbenchNet(in_channels=1, widths=(8, 32, 32)))
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x.flip(-1)))  # training mode: the net alone
        model.eval()
        torch.testing.assert_close(model(x), model(x.flip(-1)))
        torch.testing.assert_close(model(x), (model.model(x) + model.model(x.flip(-1))) / 2)


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
        ValueError, match=r"unknown model 'resnet50'; zoo models are \['airbench', 'mlp', 'resnet'"
    ):
        build_model("resnet50")
    with pytest.raises(
        TypeError,
        match=r"model 'simple_cnn': .*'width'.*; it accepts \['in_channels', 'num_classes', 'widths'\]",
    ):
        build_model("simple_cnn", width=3)
