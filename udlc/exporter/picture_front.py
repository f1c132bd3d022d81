"""A picture model's ONNX graph resizes its own input: whoever serves model.onnx feeds a decoded picture of any size
(float32 (N, C, H, W), values 0..255) and the graph scales it to the size trained on, as training's decoding did
(udlc.data.image_folder.decode: `crop` scales the shorter side to fit and cuts out the middle, `stretch` scales to
the size whatever the shape). Pillow's bilinear resize is an antialiased triangle filter; ONNX Resize (opset 18)
with `antialias` is the same filter (`exclude_outside` renormalizes it at the borders, as Pillow does): the two
agree within one unit of 255, Pillow rounding to whole values between its passes. A picture of the trained size
passes through unchanged.

The front is written in ONNX directly, after the torch export: the fitted size depends on the picture's own
size through a rounding, which torch.export would have to specialize on."""

from __future__ import annotations

from typing import Any

import numpy as np

PREFIX = "picture_front/"  # the front's own names, apart from the exported graph's


def add_picture_front(proto: Any, size: tuple[int, int], resize: str) -> Any:
    """`proto` (one input, of a fixed picture size) with a front that takes any height and width."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    (original,) = graph.input
    name = original.name
    inner = PREFIX + "resized"
    for node in graph.node:  # the exported graph now reads the front's output
        node.input[:] = [inner if i == name else i for i in node.input]

    def n(s: str) -> str:
        return PREFIX + s

    constants = {"size": np.array(size, np.int64)}
    if resize == "crop":  # as decode: scale = max(h/H, w/W), fitted = max(size, round(shape * scale)), the middle
        constants.update(size_f=np.array(size, np.float32), two=np.array([2, 2], np.int64),
                         axes=np.array([2, 3], np.int64))
        nodes = [
            helper.make_node("Shape", [name], [n("shape")], start=2, end=4),
            helper.make_node("Cast", [n("shape")], [n("shape_f")], to=TensorProto.FLOAT),
            helper.make_node("Div", [n("size_f"), n("shape_f")], [n("ratios")]),
            helper.make_node("ReduceMax", [n("ratios")], [n("scale")], keepdims=1),
            helper.make_node("Mul", [n("shape_f"), n("scale")], [n("scaled")]),
            helper.make_node("Round", [n("scaled")], [n("rounded")]),  # half to even, as Python's round
            helper.make_node("Cast", [n("rounded")], [n("rounded_i")], to=TensorProto.INT64),
            helper.make_node("Max", [n("rounded_i"), n("size")], [n("fitted")]),
            _resize(name, n("fitted"), n("scaled_picture")),
            helper.make_node("Sub", [n("fitted"), n("size")], [n("spare")]),
            helper.make_node("Div", [n("spare"), n("two")], [n("start")]),
            helper.make_node("Add", [n("start"), n("size")], [n("end")]),
            helper.make_node("Slice", [n("scaled_picture"), n("start"), n("end"), n("axes")], [inner]),
        ]
    else:
        nodes = [_resize(name, n("size"), inner)]
    exported = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + exported)
    graph.initializer.extend(numpy_helper.from_array(v, n(k)) for k, v in constants.items())
    dims = original.type.tensor_type.shape.dim
    batch = dims[0].dim_param or dims[0].dim_value
    picture = helper.make_tensor_value_info(name, original.type.tensor_type.elem_type,
                                            [batch, dims[1].dim_value, "height", "width"])
    graph.input.remove(original)
    graph.input.insert(0, picture)
    onnx.checker.check_model(proto)
    return proto


def _resize(source: str, sizes: str, out: str) -> Any:
    from onnx import helper

    return helper.make_node("Resize", [source, "", "", sizes], [out], mode="linear", antialias=1, axes=[2, 3],
                            coordinate_transformation_mode="half_pixel", exclude_outside=1)
