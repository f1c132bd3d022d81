"""`udlc export RUN --triton REPO`: a Triton model repository whose config.pbtxt, parsed into Triton's own
model-config protobuf (tritonclient), says what the ONNX file itself says (read here with onnxruntime); its
model.onnx answers as `udlc predict` does; a VAE gives one model per file; what Triton cannot serve is refused,
and a failure leaves no half repository."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TrainedRun, edited_spec, train_here
from tests.fast_export import fast_exporter  # noqa: F401  (a fixture: pytest finds it by name)
from udlc.errors import UdlcError

ROOT = Path(__file__).resolve().parent.parent
TRITON_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(int64)": "TYPE_INT64", "tensor(bool)": "TYPE_BOOL"}


def udlc(*args) -> tuple[int, str, str]:
    """The udlc command in this process (onnxruntime only, unless a run has to be exported)."""
    from click.testing import CliRunner

    from udlc.cli import main

    result = CliRunner().invoke(main, list(map(str, args)))
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def config(folder: Path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def assert_config_says_what_the_file_says(folder: Path, onnx_file: Path, max_batch: int = 64) -> None:
    """config.pbtxt against the ONNX file as onnxruntime reads it: names, datatypes, dims (without the batch axis
    when batching; -1 for every free axis), batching, and every metadata entry as a parameter."""
    import onnxruntime as ort
    from tritonclient.grpc import model_config_pb2

    c = config(folder)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert c.name == folder.name and c.platform == "onnxruntime_onnx"
    assert c.max_batch_size == max_batch and c.HasField("dynamic_batching") == (max_batch > 0)
    for written, args in ((c.input, session.get_inputs()), (c.output, session.get_outputs())):
        assert [t.name for t in written] == [a.name for a in args]
        assert [model_config_pb2.DataType.Name(t.data_type) for t in written] == [TRITON_TYPES[a.type] for a in args]
        for t, a in zip(written, args):
            assert a.shape[0] == "batch"
            shape = a.shape[1:] if max_batch else a.shape
            assert list(t.dims) == [d if isinstance(d, int) else -1 for d in shape]
    assert {k: p.string_value for k, p in c.parameters.items()} == meta
    assert json.loads(c.parameters["classes"].string_value) == json.loads(meta["classes"])
    assert (folder / "1" / "model.onnx").read_bytes() == onnx_file.read_bytes()


def test_digits_repository_says_what_the_file_says_and_predicts_as_udlc_predict(digits_run: TrainedRun,
                                                                                tmp_path: Path) -> None:
    import onnxruntime as ort
    from sklearn.datasets import load_digits

    code, out, err = udlc("export", digits_run.run, "--triton", tmp_path / "repo")
    assert code == 0, err
    folder = tmp_path / "repo" / "tiny-digits"  # the spec's name
    assert out.split() == [str(folder)]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == \
        ["repo/tiny-digits/1/model.onnx", "repo/tiny-digits/config.pbtxt"]  # and nothing staged is left
    assert_config_says_what_the_file_says(folder, digits_run.run / "model.onnx")
    assert list(config(folder).input[0].dims) == [64]

    raw = load_digits().data[:7].astype(np.float32)
    np.save(tmp_path / "x.npy", raw)
    logits, probs = ort.InferenceSession(str(folder / "1" / "model.onnx")).run(None, {"x": raw})
    code, out, err = udlc("predict", folder / "1" / "model.onnx", tmp_path / "x.npy")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["prediction"]) for r in rows] == probs.argmax(1).tolist() == logits.argmax(1).tolist()
    np.testing.assert_allclose([[float(r[f"p_{i}"]) for i in range(10)] for r in rows], probs, atol=1e-6)


def test_an_existing_model_is_refused_unless_overwritten(digits_run: TrainedRun, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "tiny-digits").mkdir(parents=True)
    (repo / "tiny-digits" / "config.pbtxt").write_text("mine")
    code, _, err = udlc("export", digits_run.run, "--triton", repo)
    assert code == 4 and "exists already" in err and "--overwrite" in err
    assert (repo / "tiny-digits" / "config.pbtxt").read_text() == "mine"
    code, _, err = udlc("export", digits_run.run, "--triton", repo, "--overwrite")
    assert code == 0, err
    assert_config_says_what_the_file_says(repo / "tiny-digits", digits_run.run / "model.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # the replaced one went with the staging folder
    for args, words in [(("-o", tmp_path / "m.onnx"), "-o and --quantize do not apply"),
                        (("--max-batch", "0"), None), (("--quantize", "int8"), "-o and --quantize do not apply")]:
        code, _, err = udlc("export", digits_run.run, "--triton", tmp_path / "other", *args)
        if words is None:  # --max-batch 0: no batching, the batch axis is one of the dims
            assert code == 0, err
            assert_config_says_what_the_file_says(tmp_path / "other" / "tiny-digits", digits_run.run / "model.onnx",
                                                  max_batch=0)
            shutil.rmtree(tmp_path / "other")
        else:
            assert code == 1 and words in err
    code, _, err = udlc("export", digits_run.run, "--overwrite")  # without --triton
    assert code == 1 and "options of --triton" in err


def handmade_run(digits_run: TrainedRun, folder: Path, shape: list, dtype: str = "float", output: str = "same"
                 ) -> Path:
    """A copy of the digits run whose model.onnx is a handmade graph x → y with the run's metadata: an input of
    `shape` and `dtype`, and an output of the same (`same`), of bools (`bool`) or a sequence of tensors."""
    import onnx
    from onnx import TensorProto, helper

    run = Path(shutil.copytree(digits_run.run, folder / "run"))
    meta = {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}
    element = {"float": TensorProto.FLOAT, "int64": TensorProto.INT64}[dtype]
    x = helper.make_tensor_value_info("x", element, shape)
    if output == "sequence":
        y = helper.make_tensor_sequence_value_info("y", element, shape)
        node = helper.make_node("SequenceConstruct", ["x"], ["y"])
    elif output == "bool":
        y = helper.make_tensor_value_info("y", TensorProto.BOOL, shape)
        node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BOOL)
    else:
        y, node = helper.make_tensor_value_info("y", element, shape), helper.make_node("Identity", ["x"], ["y"])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(model, meta)
    onnx.save(model, str(run / "model.onnx"))
    return run


def test_a_symbolic_length_is_a_free_dim(digits_run: TrainedRun, tmp_path: Path) -> None:
    """Token ids of any length T in, bools out (as a sequence model's tokens and mask): dims [-1]."""
    from udlc.exporter.triton import export_triton

    run = handmade_run(digits_run, tmp_path, ["batch", "T"], dtype="int64", output="bool")
    (folder,) = export_triton(run, tmp_path / "repo")
    assert_config_says_what_the_file_says(folder, run / "model.onnx")
    c = config(folder)
    assert list(c.input[0].dims) == list(c.output[0].dims) == [-1]


def test_what_triton_cannot_serve_is_refused_and_leaves_nothing(digits_run: TrainedRun, tmp_path: Path) -> None:
    from udlc.exporter.triton import export_triton

    run = handmade_run(digits_run, tmp_path / "a", [3, 64])  # no free batch axis: the batcher could not stack
    repo = tmp_path / "repo"
    with pytest.raises(UdlcError, match="no batch axis.*--max-batch 0"):
        export_triton(run, repo)
    (folder,) = export_triton(run, repo, max_batch=0)  # without batching Triton serves it as it is
    assert list(config(folder).input[0].dims) == [3, 64] and not config(folder).HasField("dynamic_batching")

    run = handmade_run(digits_run, tmp_path / "b", ["batch", 64], output="sequence")
    with pytest.raises(UdlcError, match=r"output 'y' is a seq\(tensor\(float\)\).*no datatype"):
        export_triton(run, tmp_path / "repo2")
    assert not (tmp_path / "repo2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "repo"]  # no staging folder left


def test_a_failure_while_writing_leaves_no_half_repository(digits_run: TrainedRun, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from udlc.exporter import triton

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(triton, "config_text", broken)  # after model.onnx is copied into the staging folder
    with pytest.raises(OSError, match="disk full"):
        triton.export_triton(digits_run.run, tmp_path / "repo")
    assert [p.name for p in tmp_path.iterdir()] == ["repo"] and not any((tmp_path / "repo").iterdir())


@pytest.mark.slow
@pytest.mark.long  # trains a VAE: the longer tier; `make test` writes the digits run's repository
@pytest.mark.usefixtures("fast_exporter", "one_torch_thread")
def test_a_vae_gives_a_model_per_file_exported_first(tmp_path: Path) -> None:
    """A tiny VAE trained here and never exported: --triton exports it first, then writes its decoder (model.onnx)
    and its encoder (encoder.onnx) as two models, each with its own config."""
    tiny = {"train.epochs": 1, "models.encoder.layers": [
        "flatten", {"linear": 8}, {"relu": {"id": "features"}}, {"linear": {"out_features": 2, "id": "mu"}},
        {"linear": {"out_features": 2, "id": "logvar", "from": "features"}}],
        "models.decoder.input": [2], "models.decoder.layers": [{"linear": 64}, {"reshape": [1, 8, 8]}]}
    run = train_here(edited_spec(tmp_path / "vae.yaml", ROOT / "examples" / "vae-digits.yaml", tiny), tmp_path / "runs")
    assert not list(run.glob("*.onnx"))
    code, out, err = udlc("export", run, "--triton", tmp_path / "repo")
    assert code == 0, err
    decoder, encoder = tmp_path / "repo" / "vae-digits", tmp_path / "repo" / "vae-digits-encoder"
    assert out.split() == [str(decoder), str(encoder)]
    assert_config_says_what_the_file_says(decoder, run / "model.onnx")
    assert_config_says_what_the_file_says(encoder, run / "encoder.onnx")
    assert list(config(encoder).input[0].dims) == [1, 8, 8] and list(config(decoder).output[0].dims) == [1, 8, 8]
    assert config(encoder).parameters["served"].string_value != config(decoder).parameters["served"].string_value


def test_any_metadata_text_survives_the_text_format() -> None:
    """Quotes, backslashes, newlines, control characters and non-ASCII text read back as written."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from udlc.exporter.triton import quoted

    value = 'name: "digits"\n\tpath: C:\\runs\r\x01 — é 数字 🙂'
    c = text_format.Parse(f"parameters: {{ key: {quoted('k')} value: {{ string_value: {quoted(value)} }} }}",
                          model_config_pb2.ModelConfig())
    assert c.parameters["k"].string_value == value
