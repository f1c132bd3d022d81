"""Small udlc files built by hand for the server's tests, where training one would cost seconds: a picture
classifier (8×8 grey pictures, three classes), a text classifier (bytes, two classes), a sampler (2-D points), a
regression on rows with a categorical column, two language models (one cached, one that spells the alphabet),
seq2seq, a token labeller and graph networks. Each has the metadata
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


def pair_classifier(path: Path, name: str = "claims") -> Path:
    """text_classifier's network over sentence pairs, as udlc exports one: the byte tokenizer with [CLS], [SEP] and
    [MASK] after its ids, and the two text columns as a JSON list."""
    from onnx import load, save

    text_classifier(path, name)
    model = load(str(path))
    meta = {p.key: p for p in model.metadata_props}
    meta["text_column"].value = json.dumps(["line", "claim"])
    meta["tokenizer"].value = json.dumps({"type": "special", "base": {"type": "byte"},
                                          "specials": ["[CLS]", "[SEP]", "[MASK]"]})
    rng = np.random.default_rng(2)
    for tensor in model.graph.initializer:
        if tensor.name == "embedding":  # 256 bytes and 3 specials
            from onnx import numpy_helper

            tensor.CopyFrom(numpy_helper.from_array(rng.normal(size=(259, 2)).astype(np.float32), "embedding"))
    save(model, str(path))
    return path


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


# ---- rows, for the page and the OpenAPI document --------------------------------------------------------------

COLUMN, CATEGORIES = 'size <cm> "x"', ["red", '"green" <i>']  # markup and quotes the page must escape


def rows_model(path: Path) -> Path:
    """A regression on rows: 'weight' (empty: its training mean), COLUMN, and 'color' one of CATEGORIES."""
    from onnx import TensorProto, helper

    columns = ["weight", COLUMN, *(f"color={c}" for c in CATEGORIES)]
    meta = {"spec_name": "fruit <b>", "served": "values", "task": "supervised", "target": "regression",
            "target_column": "price", "classes": "null", "input_names": json.dumps(["x"]),
            "input_shapes": json.dumps([[4]]), "outputs": json.dumps(["prediction"]),
            "feature_columns": json.dumps(columns), "categories": json.dumps({"color": CATEGORIES}),
            "fill_values": json.dumps({"weight": 1.5})}
    return _save(path, [helper.make_node("MatMul", ["x", "w"], ["prediction"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                 [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["batch", 1])],
                 {"w": np.array([[1.0], [10.0], [100.0], [1000.0]], np.float32)}, meta)


def letter_model(path: Path, name: str) -> Path:
    """A byte-level language model without a cache whose likeliest next letter follows the last in the alphabet
    ('abc' → 'abcdefgh' greedily); any other byte is followed by 'a'."""
    from onnx import TensorProto, helper

    follows = np.full(256, ord("a"))
    follows[ord("a"):ord("z") + 1] = ord("a") + (np.arange(26) + 1) % 26
    weights = np.zeros((256, 256), np.float32)
    weights[np.arange(256), follows] = 10.0
    meta = {"spec_name": name, "served": "next_token", "task": "language_model", "tokenizer": json.dumps(
        {"type": "byte"}), "context": "16", "vocab_size": "256", "outputs": json.dumps(["logits"])}
    return _save(path, [helper.make_node("Gather", ["w", "tokens"], ["logits"])],
                 [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "T"])],
                 [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "T", 256])],
                 {"w": weights}, meta)


# ---- generate's kinds and graphs ----------------------------------------------------------------------------

CHARS = "abcdefgh "
SEQ_VOCABULARY = ["<pad>", "<bos>", "<eos>", "a", "b", "c"]


def _info(name: str, dims: list, kind: int | None = None):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, kind or TensorProto.FLOAT, dims)


def language_model(path: Path, context: int = 8) -> Path:
    """Characters of CHARS, a context of 8, one cached layer: the last position's logits are
    (E[token] + the sum of every cached key) · W, so the next token depends on all the tokens the cache holds —
    a step that forgot the cache would answer otherwise."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(2)
    v, d = len(CHARS), 4
    nodes = [helper.make_node("Gather", ["E", "tokens"], ["emb"]),
             helper.make_node("Gather", ["K", "tokens"], ["k"]),
             helper.make_node("Unsqueeze", ["k", "one"], ["k4"]),
             helper.make_node("Concat", ["past_key_0", "k4"], ["present_key_0"], axis=2),
             helper.make_node("Concat", ["past_value_0", "k4"], ["present_value_0"], axis=2),
             helper.make_node("ReduceSum", ["present_key_0", "two"], ["summed"], keepdims=0),
             helper.make_node("Add", ["emb", "summed"], ["h"]),
             helper.make_node("MatMul", ["h", "W"], ["logits"])]
    past = [_info(f"past_{kv}_0", ["batch", 1, "past", d]) for kv in ("key", "value")]
    present = [_info(f"present_{kv}_0", ["batch", 1, "length", d]) for kv in ("key", "value")]
    meta = {"spec_name": "tiny-lm", "served": "next_token", "task": "language_model", "context": str(context),
            "tokenizer": json.dumps({"type": "char", "chars": CHARS}), "vocab_size": str(v),
            "kv_cache": json.dumps(["past_key_0", "past_value_0"]), "outputs": json.dumps(["logits"])}
    weights = {"E": rng.normal(size=(v, d)).astype(np.float32), "K": rng.normal(size=(v, d)).astype(np.float32),
               "W": rng.normal(size=(d, v)).astype(np.float32), "one": np.array([1], np.int64),
               "two": np.array([2], np.int64)}
    return _save(path, nodes, [_info("tokens", ["batch", "T"], TensorProto.INT64), *past],
                 [_info("logits", ["batch", "T", v]), *present], weights, meta)


def seq2seq(path: Path) -> Path:
    """source, decoder (and their masks) → logits: (E[decoded token] + the mean of F[source]) · W."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)
    v, d = len(SEQ_VOCABULARY), 4
    nodes = [helper.make_node("Gather", ["E", "decoder"], ["d"]),
             helper.make_node("Gather", ["F", "source"], ["s"]),
             helper.make_node("ReduceMean", ["s", "one"], ["mean"], keepdims=1),
             helper.make_node("Add", ["d", "mean"], ["h"]),
             helper.make_node("MatMul", ["h", "W"], ["logits"])]
    inputs = [_info("source", ["batch", "S"], TensorProto.INT64),
              _info("source_mask", ["batch", "S"], TensorProto.BOOL),
              _info("decoder", ["batch", "t"], TensorProto.INT64),
              _info("decoder_mask", ["batch", "t"], TensorProto.BOOL)]
    meta = {"spec_name": "tiny-seq2seq", "served": "decoded_text", "task": "seq2seq",
            "vocabulary": json.dumps(SEQ_VOCABULARY), "max_target_length": "5", "outputs": json.dumps(["logits"])}
    weights = {"E": rng.normal(size=(v, d)).astype(np.float32), "F": rng.normal(size=(v, d)).astype(np.float32),
               "W": rng.normal(size=(d, v)).astype(np.float32), "one": np.array([1], np.int64)}
    return _save(path, nodes, inputs, [_info("logits", ["batch", "t", v])], weights, meta)


def token_labeller(path: Path) -> Path:
    from onnx import TensorProto, helper

    rng = np.random.default_rng(4)
    v, d = len(SEQ_VOCABULARY), 3
    nodes = [helper.make_node("Gather", ["E", "tokens"], ["e"]), helper.make_node("MatMul", ["e", "W"], ["logits"])]
    meta = {"spec_name": "tiny-labels", "served": "token_labels", "task": "token_classification",
            "vocabulary": json.dumps(SEQ_VOCABULARY), "outputs": json.dumps(["logits"])}
    return _save(path, nodes, [_info("tokens", ["batch", "T"], TensorProto.INT64),
                               _info("tokens_mask", ["batch", "T"], TensorProto.BOOL)],
                 [_info("logits", ["batch", "T", v])], {"E": rng.normal(size=(v, d)).astype(np.float32),
                                                        "W": rng.normal(size=(d, v)).astype(np.float32)}, meta)


def graph_network(path: Path, links: bool) -> Path:
    """x (1, N, 2), edge_index (1, 2, E) → each node's features plus the sum of its in-neighbours', times W: class
    logits and probabilities of 'red', 'blue' (a node classifier), or embeddings (a link scorer)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(5 + links)
    nodes = [helper.make_node("Squeeze", ["x", "zero"], ["xs"]),
             helper.make_node("Squeeze", ["edge_index", "zero"], ["e"]),
             helper.make_node("Gather", ["e", "i0"], ["src"], axis=0),
             helper.make_node("Gather", ["e", "i1"], ["dst"], axis=0),
             helper.make_node("Gather", ["xs", "src"], ["msg"], axis=0),
             helper.make_node("Unsqueeze", ["dst", "one"], ["dst2"]),
             helper.make_node("Shape", ["msg"], ["msg_shape"]),
             helper.make_node("Expand", ["dst2", "msg_shape"], ["where"]),
             helper.make_node("ScatterElements", ["xs", "where", "msg"], ["agg"], axis=0, reduction="add"),
             helper.make_node("MatMul", ["agg", "W"], ["out"]),
             helper.make_node("Unsqueeze", ["out", "zero"], ["embedding" if links else "logits"])]
    outputs = [_info("embedding", [1, "N", 3])] if links else [_info("logits", [1, "N", 2]),
                                                                 _info("probabilities", [1, "N", 2])]
    if not links:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    meta = {"spec_name": "tiny-links" if links else "tiny-nodes",
            "served": "edge_probabilities" if links else "node_classes",
            "task": "link_prediction" if links else "node_classification",
            "input_names": json.dumps(["x", "edge_index"]), "input_shapes": json.dumps([["N", 2], [2, "E"]]),
            "classes": json.dumps(["red", "blue"]), "outputs": json.dumps([o.name for o in outputs])}
    weights = {"W": rng.normal(size=(2, 3 if links else 2)).astype(np.float32), "zero": np.array([0], np.int64),
               "one": np.array([1], np.int64), "i0": np.array(0, np.int64), "i1": np.array(1, np.int64)}
    return _save(path, nodes, [_info("x", [1, "N", 2]), _info("edge_index", [1, 2, "E"], TensorProto.INT64)],
                 outputs, weights, meta)
