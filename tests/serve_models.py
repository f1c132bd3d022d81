"""Three small udlc files built by hand for the server's tests, where training one would cost seconds: a
picture classifier (8×8 grey pictures, three classes), a text classifier (bytes, two classes) and a sampler
(2-D points). Each has the metadata
udlc's exporter writes for its kind, so the runtime's readers read them as they read exported files; their
graphs are sample-wise (a sample's answer never depends on another's), as every exported network is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _save(path: Path, nodes: list, inputs: list, outputs: list, weights: dict[str, np.ndarray],
          meta: dict[str, str]) -> Path:
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs,
                              [numpy_helper.from_array(w, name) for name, w in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def picture_classifier(path: Path, name: str = "shapes") -> Path:
    """x (N, 1, 8, 8) raw pixels → logits and probabilities of 'bar', 'disc', 'square'."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Flatten", ["x"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], alpha=1 / 255),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    meta = {"spec_name": name, "served": "classes", "task": "supervised", "target": "classification",
            "classes": json.dumps(["bar", "disc", "square"]), "input_names": json.dumps(["x"]),
            "input_shapes": json.dumps([[1, 8, 8]]), "outputs": json.dumps(["logits", "probabilities"]),
            "feature_columns": "null", "pictures": json.dumps({"size": [8, 8], "channels": 1, "resize": "crop",
                                                              "resized_in_graph": False})}
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["batch", 3]) for o in ("logits", "probabilities")]
    return _save(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])], outputs,
                 {"w": rng.normal(size=(64, 3)).astype(np.float32), "b": np.zeros(3, np.float32)}, meta)


def text_classifier(path: Path, name: str = "reviews") -> Path:
    """tokens (N, T) of a byte tokenizer and their mask → probabilities of 'bad', 'good': each sample's mean
    embedding of its own tokens."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Gather", ["embedding", "tokens"], ["embedded"]),
             helper.make_node("Cast", ["tokens_mask"], ["maskf"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["maskf", "last"], ["mask3"]),
             helper.make_node("Mul", ["embedded", "mask3"], ["kept"]),
             helper.make_node("ReduceSum", ["kept", "time"], ["summed"], keepdims=0),
             helper.make_node("ReduceSum", ["maskf", "time"], ["count"], keepdims=1),
             helper.make_node("Div", ["summed", "count"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    meta = {"spec_name": name, "served": "text_classes", "task": "sequence_classification",
            "classes": json.dumps(["bad", "good"]), "text_column": "review", "max_tokens": "32",
            "tokenizer": json.dumps({"type": "byte"}), "outputs": json.dumps(["logits", "probabilities"])}
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "T"]),
              helper.make_tensor_value_info("tokens_mask", TensorProto.BOOL, ["batch", "T"])]
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["batch", 2]) for o in ("logits", "probabilities")]
    return _save(path, nodes, inputs, outputs,
                 {"embedding": rng.normal(size=(256, 2)).astype(np.float32), "last": np.array([2], np.int64),
                  "time": np.array([1], np.int64)}, meta)


def sampler(path: Path, name: str = "points") -> Path:
    """A generator as a VAE's decoder is one: a latent z (N, 2) from N(0, I) → a sample (N, 2), 2-D points."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("MatMul", ["z", "w"], ["sample"])]
    meta = {"spec_name": name, "served": "samples", "task": "vae", "network": "decoder",
            "latent_shape": json.dumps([2]), "value_range": json.dumps([-3.0, 3.0]), "input_names": json.dumps(["z"]),
            "classes": "null", "outputs": json.dumps(["sample"])}
    return _save(path, nodes, [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 2])],
                 [helper.make_tensor_value_info("sample", TensorProto.FLOAT, ["batch", 2])],
                 {"w": np.array([[1.0, 0.5], [0.0, 2.0]], np.float32)}, meta)


def write_picture(path: Path, seed: int, size: tuple[int, int] = (8, 8)) -> Path:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    Image.fromarray(pixels, "L").save(path)
    return path
