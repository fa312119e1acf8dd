"""`weft export` and `weft onnx-info`, run through their argument parsers."""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnx
import pytest
import torch

from weft.cli import COMMANDS
from weft.commands import export as export_command
from weft.commands import onnx_info as info_command
from weft.models import build_model

ort = pytest.importorskip("onnxruntime")

MLP_ARGS = ["--model", "mlp", "--model-arg", "in_features=12", "--model-arg", "hidden=[8]",
            "--model-arg", "num_classes=3", "--input-shape", "3,2,2"]  # fmt: skip


def run(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def test_commands_are_in_the_cli_table():
    assert COMMANDS["export"] == "weft.commands.export"
    assert COMMANDS["onnx-info"] == "weft.commands.onnx_info"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A zoo MLP with random weights, saved as a weft training checkpoint."""
    torch.manual_seed(3)
    model = build_model("mlp", in_features=12, hidden=[8], num_classes=3)
    folder = tmp_path_factory.mktemp("ckpt")
    torch.save({"format": "weft-checkpoint/1", "model": model.state_dict()}, folder / "last.pt")
    return model.eval(), folder


@pytest.fixture(scope="module")
def onnx_file(trained):
    _, folder = trained
    argv = [str(folder / "last.pt"), str(folder / "mlp.onnx"), *MLP_ARGS, "--class-names", "a,b,c"]
    assert run(export_command, argv) == 0
    return folder / "mlp.onnx"


def test_export_writes_the_checkpoint_weights(trained, onnx_file, capsys):
    model, _ = trained
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 2, 2)
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    props = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert json.loads(props["weft.class_names"]) == ["a", "b", "c"]


def test_export_takes_a_bare_state_dict(trained, tmp_path, capsys):
    model, _ = trained
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    assert (
        run(export_command, [str(tmp_path / "weights.pt"), str(tmp_path / "m.onnx"), *MLP_ARGS])
        == 0
    )
    assert "max abs difference" in capsys.readouterr().out


def test_export_errors_say_what_to_pass(trained, tmp_path, capsys):
    _, folder = trained
    ckpt, out = str(folder / "last.pt"), str(tmp_path / "x.onnx")
    wrong = [a.replace("hidden=[8]", "hidden=[16]") for a in MLP_ARGS]
    assert run(export_command, [ckpt, out, *wrong]) == 1
    assert "does not fit model 'mlp'" in capsys.readouterr().err
    assert run(export_command, [str(tmp_path / "none.pt"), out, *MLP_ARGS]) == 1
    assert "no checkpoint at" in capsys.readouterr().err
    bad_shape = [*MLP_ARGS[:-1], "3xx2"]
    assert run(export_command, [ckpt, out, *bad_shape]) == 2
    assert "--input-shape '3xx2': expected e.g. 3,32,32" in capsys.readouterr().err
    assert run(export_command, [ckpt, out, *MLP_ARGS, "--model-arg", "oops"]) == 1
    assert "--model-arg 'oops': expected KEY=VALUE" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    assert run(export_command, [str(tmp_path / "junk.pt"), out, *MLP_ARGS]) == 1
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_onnx_info_reports_the_file(onnx_file, capsys):
    assert run(info_command, [str(onnx_file)]) == 0
    out = capsys.readouterr().out
    assert "opset: ai.onnx 20" in out
    assert "float32 ['batch', 3, 2, 2]" in out
    assert "parameters: 131 trainable elements" in out  # 12*8 + 8 + 8*3 + 3
    assert "Gemm" in out and "Reshape" in out
    assert 'weft.class_names: ["a", "b", "c"]' in out


def test_onnx_info_on_a_damaged_file(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage")
    assert run(info_command, [str(tmp_path / "bad.onnx")]) == 1
    assert "weft onnx-info: " in capsys.readouterr().err
