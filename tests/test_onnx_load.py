"""weft.onnx.load on what torch's exporters write: equal to onnxruntime, trainable, re-exportable."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import weft.onnx
from weft.onnx import OnnxImportError, OnnxModule

ort = pytest.importorskip("onnxruntime")


class Encoder(nn.Module):
    """A small Transformer encoder classifier over (batch, 5 tokens, 6 features)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(1))


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


MODELS = {
    "mlp": (_mlp, (8,)),
    "cnn": (_cnn, (3, 12, 12)),
    "transformer": (Encoder, (5, 6)),
}
# The legacy exporter at older opsets; scaled_dot_product_attention needs 14. Constant
# folding off keeps BatchNormalization as its own node (the dynamo file folds it into Conv).
LEGACY_OPSET = {"mlp": 13, "cnn": 13, "transformer": 14}


def _randomised(factory) -> nn.Module:
    """A model with distinct random weights and BatchNorm statistics; exporters store equal
    tensors once, which would tie weights that fresh initialisation made equal."""
    torch.manual_seed(0)
    model = factory()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
    return model.eval()


def _export(model: nn.Module, sample: torch.Tensor, path: Path, exporter: str, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                model, (sample,), path, dynamic_shapes=({0: batch},), external_data=False,
                verbose=False,
            )  # fmt: skip
        else:
            torch.onnx.export(
                model, (sample,), path, dynamo=False, opset_version=opset,
                input_names=["x"], dynamic_axes={"x": {0: "batch"}}, do_constant_folding=False,
            )  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """Each model exported once per exporter: (model, exporter) -> file."""
    folder = tmp_path_factory.mktemp("onnx_models")
    files = {}
    for name, (factory, shape) in MODELS.items():
        model = _randomised(factory)
        for exporter in ("dynamo", "legacy"):
            path = folder / f"{name}_{exporter}.onnx"
            _export(model, torch.randn(2, *shape), path, exporter, LEGACY_OPSET[name])
            files[name, exporter] = path
    return files


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


CASES = [(m, e) for m in MODELS for e in ("dynamo", "legacy")]


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_imported_module_equals_onnxruntime(exported, name, exporter):
    path = exported[name, exporter]
    module = weft.onnx.load(path).eval()
    assert isinstance(module, OnnxModule)
    rng = np.random.default_rng(1)
    for batch in (1, 3, 7):
        x = rng.standard_normal((batch, *MODELS[name][1])).astype(np.float32)
        with torch.no_grad():
            got = module(torch.from_numpy(x)).numpy()
        expected = _ort(path, x)
        assert got.shape == expected.shape == (batch, 3)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_opset_and_batchnorm_form_of_the_test_files(exported):
    # Guards the other tests: the legacy files are old opsets and keep BatchNormalization.
    legacy = onnx.load(str(exported["cnn", "legacy"]))
    assert legacy.opset_import[0].version == 13
    assert "BatchNormalization" in {n.op_type for n in legacy.graph.node}
    dynamo = onnx.load(str(exported["cnn", "dynamo"]))
    assert dynamo.opset_import[0].version >= 18
    assert "BatchNormalization" not in {n.op_type for n in dynamo.graph.node}


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_every_parameter_receives_a_gradient(exported, name, exporter):
    module = weft.onnx.load(exported[name, exporter]).train()
    params = dict(module.named_parameters())
    assert params, "weights must become Parameters"
    x = torch.randn(4, *MODELS[name][1])
    module(x).pow(2).mean().backward()
    missing = [n for n, p in params.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_weights_are_parameters_statistics_buffers_and_scalars_constants(exported):
    module = weft.onnx.load(exported["cnn", "legacy"])
    n_params = sum(p.numel() for p in module.parameters())
    assert n_params == sum(p.numel() for p in _cnn().parameters())
    # running mean and variance are persistent buffers: state, saved, not trained
    stats = {k for k in module.state_dict() if k not in dict(module.named_parameters())}
    assert len(stats) == 4 and all(k.endswith(("running_mean", "running_var")) for k in stats)
    # the dynamo transformer's attention scale is a one-element constant, not a weight
    encoder = weft.onnx.load(exported["transformer", "dynamo"])
    assert all(p.numel() > 1 for p in encoder.parameters())
    assert sum(p.numel() for p in encoder.parameters()) == sum(
        p.numel() for p in Encoder().parameters()
    )


def test_parameter_names_follow_the_initializer_names(exported):
    module = weft.onnx.load(exported["mlp", "dynamo"])
    assert sorted(dict(module.named_parameters())) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    reference = _randomised(_mlp)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(module.state_dict()[key], value)


def test_batchnorm_follows_train_and_eval(exported):
    module = weft.onnx.load(exported["cnn", "legacy"])
    before = {k: v.clone() for k, v in module.state_dict().items() if "running" in k}
    x = torch.randn(8, 3, 12, 12) * 3 + 1
    module.eval()(x)
    assert all(torch.equal(module.state_dict()[k], v) for k, v in before.items())
    module.train()(x)
    assert all(not torch.equal(module.state_dict()[k], v) for k, v in before.items())


def test_training_inside_a_learner_lowers_the_loss(exported):
    from weft.train import Learner

    torch.manual_seed(0)
    module = weft.onnx.load(exported["cnn", "legacy"])
    x = torch.randn(64, 3, 12, 12)
    y = x.mean((2, 3)).argmax(1)  # the brightest channel: learnable by this network
    train = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    learner = Learner(module, nn.functional.cross_entropy, optimizer, data=(train, train[:2]))
    result = learner.fit(6)
    assert result.completed
    losses = [row["train_loss"] for row in result.history]
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert result.history[-1]["valid_loss"] < result.history[0]["valid_loss"]


def test_imported_module_trains_in_lockstep_with_the_original(exported):
    # Same weights, data and optimizer: the losses agree step by step, so every gradient
    # (BatchNorm in training mode included) is the original's.
    original = _randomised(_cnn).train()
    module = weft.onnx.load(exported["cnn", "legacy"]).train()
    x = torch.randn(16, 3, 12, 12)
    y = torch.randint(0, 3, (16,))
    for model in (original, module):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        losses = []
        for _ in range(5):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.losses = losses
    np.testing.assert_allclose(module.losses, original.losses, rtol=1e-4)


@pytest.mark.parametrize(("name", "exporter"), [("transformer", "legacy"), ("cnn", "dynamo")])
def test_imported_module_re_exports(exported, tmp_path, name, exporter):
    module = weft.onnx.load(exported[name, exporter]).eval()
    sample = torch.randn(2, *MODELS[name][1])
    report = weft.onnx.export(module, sample, tmp_path / "again.onnx", verify_batch_sizes=(1, 4))
    assert report.max_abs_diff < 1e-4
    x = np.random.default_rng(2).standard_normal((6, *MODELS[name][1])).astype(np.float32)
    np.testing.assert_allclose(
        _ort(tmp_path / "again.onnx", x), _ort(exported[name, exporter], x), rtol=1e-4, atol=1e-5
    )


def test_shape_arithmetic_on_static_sizes_folds_at_load(exported):
    # The legacy encoder computes head sizes and the attention scale from Shape; with only
    # the batch dynamic, everything but the batch-dependent reshapes folds away.
    model = onnx.load(str(exported["transformer", "legacy"]))
    module = weft.onnx.load(exported["transformer", "legacy"])
    in_file = sum(1 for n in model.graph.node if n.op_type != "Constant")
    assert len(module.steps) < 0.85 * in_file
    assert not any(s.op_type in ("Sqrt", "Cast") for s in module.steps if s.shape_step)


# ---- bad files ---------------------------------------------------------------------------


def _graph_file(path: Path, nodes, opset: int = 17, inputs=None, initializers=()) -> Path:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, str(path))
    return path


def test_unsupported_op_names_type_opset_node_and_the_supported_list(tmp_path):
    path = _graph_file(
        tmp_path / "m.onnx",
        [
            helper.make_node("Relu", ["x"], ["r"], name="fine"),
            helper.make_node("Hardmax", ["r"], ["y"], name="odd_one"),
        ],
    )
    with pytest.raises(OnnxImportError) as info:
        weft.onnx.load(path)
    message = str(info.value)
    assert "Hardmax (node 'odd_one')" in message
    assert "opset 17" in message
    assert str(path) in message
    assert "Supported: " in message and "BatchNormalization" in message and "Conv" in message


def test_op_from_another_domain_is_named_with_its_domain(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("FusedGemm", ["x", "x"], ["y"], name="fused", domain="com.microsoft")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    onnx.save(model, str(tmp_path / "ms.onnx"))
    with pytest.raises(
        OnnxImportError, match=r"FusedGemm \(domain 'com.microsoft', node 'fused'\)"
    ):
        weft.onnx.load(tmp_path / "ms.onnx")


def test_unhandled_attribute_names_the_node(tmp_path):
    path = _graph_file(
        tmp_path / "pad.onnx",
        [
            helper.make_node(
                "AveragePool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], auto_pad="SAME_UPPER"
            )
        ],
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
    )
    with pytest.raises(
        OnnxImportError,
        match=r"node 'pool' \(AveragePool, opset 17\) in .*pad.onnx: dilated or auto_pad=SAME_\* "
        "AveragePool is not supported",
    ):
        weft.onnx.load(path)


def test_corrupt_file_is_a_clear_error(tmp_path, exported):
    data = exported["mlp", "dynamo"].read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxImportError, match=r"truncated.onnx is not a readable ONNX model"):
        weft.onnx.load(truncated)
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(OnnxImportError, match=r"notes.onnx (is not a readable|holds no) ONNX"):
        weft.onnx.load(text)
    with pytest.raises(OnnxImportError, match=r"missing.onnx: no such file"):
        weft.onnx.load(tmp_path / "missing.onnx")


def test_checker_runs_before_conversion(tmp_path):
    # Relu given two inputs violates the operator schema; the checker must say so.
    path = _graph_file(tmp_path / "bad.onnx", [helper.make_node("Relu", ["x", "x"], ["y"])])
    with pytest.raises(OnnxImportError, match=r"bad.onnx fails the ONNX checker"):
        weft.onnx.load(path)


def test_opset_below_13_asks_for_conversion(tmp_path):
    path = _graph_file(tmp_path / "old.onnx", [helper.make_node("Relu", ["x"], ["y"])], opset=11)
    with pytest.raises(OnnxImportError, match=r"uses opset 11; weft imports opsets 13-20"):
        weft.onnx.load(path)


def test_wrong_number_of_inputs_says_what_the_model_takes(exported):
    module = weft.onnx.load(exported["mlp", "legacy"])
    with pytest.raises(TypeError, match=r"takes 1 input\(s\) \['x'\], got 2"):
        module(torch.randn(1, 8), torch.randn(1, 8))


def test_opset_above_20_loads_with_a_warning(tmp_path):
    path = _graph_file(tmp_path / "new.onnx", [helper.make_node("Relu", ["x"], ["y"])], opset=21)
    with pytest.warns(UserWarning, match=r"uses opset 21; weft's converters follow opsets 13-20"):
        module = weft.onnx.load(path)
    torch.testing.assert_close(
        module(torch.tensor([[-1.0, 2.0, 0.5]] * 2)), torch.tensor([[0.0, 2.0, 0.5]] * 2)
    )


def test_external_data_loads_but_may_not_leave_the_model_folder(tmp_path):
    weight = numpy_helper.from_array(np.random.default_rng(0).random((4, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.data",
              size_threshold=0)  # fmt: skip
    module = weft.onnx.load(tmp_path / "m.onnx")
    torch.testing.assert_close(module.w.detach(), torch.tensor(numpy_helper.to_array(weight)))
    evil = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    for entry in evil.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../../etc/passwd"
    onnx.save(evil, str(tmp_path / "evil.onnx"))
    with pytest.raises(OnnxImportError, match=r"evil.onnx fails the ONNX checker.*outside"):
        weft.onnx.load(tmp_path / "evil.onnx")
