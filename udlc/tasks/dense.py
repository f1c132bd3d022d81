"""task: segmentation and task: image_to_image — pictures in, pictures out.

    task: segmentation                    # a class for every pixel: (K, H, W) logits against (H, W) masks
    data: {source: shape_masks}           # or an .npz with x (N, C, H, W) and y (N, H, W) whole-number class ids
    model: {input: [1, 32, 32], layers: [..., {conv2d: {out_channels: 4, kernel_size: 1}}]}
    loss: cross_entropy
    metrics: [pixel_accuracy, mean_iou]

    task: image_to_image                  # a picture for a picture: super-resolution, denoising
    data: {source: digits_2x}             # or an .npz with x (N, C, H, W) and y (N, C', H', W') target pictures
    model: {input: [1, 4, 4], layers: [..., {conv2d: {out_channels: 4, kernel_size: 1}}, {pixel_shuffle: 2}]}
    loss: mse                             # or mae, huber
    metrics: [psnr]

Two tasks rather than `supervised` with picture-shaped targets: what a user must get right differs from a
classifier's (the output keeps its height and width, ends in a convolution, never a `linear`), and so do the
metrics and what the exported file answers (a mask or a picture, udlc.tasks.served). Both are `supervised`'s
step and evaluation (one network, the spec's loss, metrics over the whole split) on their own data
(udlc.data.dense): inputs standardized per channel, target pictures too (every loss and metric reported, and
every exported picture, is in the targets' own units), masks left as class ids. A picture's size may be
symbolic (`input: [1, H, W]`): the data binds it, and the output is checked at those sizes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TYPE_CHECKING

from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.checks import check_sections, located
from udlc.tasks.fields import error, one_network, output_node
from udlc.tasks.registry import Served, register
from udlc.tasks.served import MASKS, PICTURES
from udlc.tasks.supervised import Supervised, SupervisedState, pictures

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


class SegmentationOptions(StrictModel):
    type: Literal["segmentation"] = "segmentation"


class ImageToImageOptions(StrictModel):
    type: Literal["image_to_image"] = "image_to_image"


class _Dense(Supervised):
    """What the two tasks share; each names its target, losses, metrics and served kind."""

    target: ClassVar[str]  # udlc.data.dense.MASKS or PICTURES: what the data's y must be
    losses: ClassVar[tuple[str, ...]]
    metrics: ClassVar[tuple[str, ...]]
    serves: ClassVar[str]
    answers: ClassVar[str]  # what the export makes of the output (softmax: per-pixel probabilities)
    sources: ClassVar[str]  # the data it reads, for messages
    mixes_targets = False  # mixup would blend masks into fractions of classes
    draws_subsets = False  # picture pairs are split by udlc.data.dense, which draws no subset

    # ---- check time -----------------------------------------------------------------------------------

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        spec, doc = compiled.spec, compiled.doc
        found = one_network(compiled, self.name)
        if isinstance(found, SpecError):
            return [found]
        _, graph, base = found
        errors = check_sections(compiled, self)
        errors += self.check_outputs(compiled, base)
        if spec.loss.type not in self.losses:
            errors.append(error(doc, f"task {self.name} learns with {' or '.join(self.losses)}, not {spec.loss.type}",
                                ("loss",), f"write `loss: {self.losses[0]}`"))
        for i, metric in enumerate(spec.metrics):
            if metric.type not in self.metrics:
                errors.append(error(doc, f"{metric.type} does not measure {self.target}", ("metrics", i),
                                    f"use {', '.join(self.metrics)}, or drop it"))
        if spec.data.augment:  # a flip or crop of the picture alone would no longer match its target
            errors.append(error(doc, f"task {self.name} takes no augmentation: it would move the picture and not "
                                     "its target", ("data", "augment"), "drop `augment`", key=True))
        written = next(iter(spec.networks.values()))
        where = base + (("inputs",) if written.inputs else ("input",))
        shapes = list(graph.inputs.values())
        if len(shapes) != 1 or len(shapes[0]) != 3:
            errors.append(error(doc, f"task {self.name} reads one picture: the model's input is [channels, height, "
                                     f"width], not {', '.join(str(list(s)) for s in shapes)}", where,
                                "e.g. `input: [1, 32, 32]`, or `input: [1, H, W]` for pictures of any size", key=True))
        if not errors and (check_files or not spec.data.is_file()):
            errors += self.check_data(compiled, base)
        return errors

    def check_data(self, compiled: Compiled, base: tuple) -> list[SpecError]:
        """The source's pictures against the input, its targets against the output, at the data's sizes."""
        from udlc.compiler.infer import bind
        from udlc.data.dense import dense_signature

        spec, doc, graph = compiled.spec, compiled.doc, self.graph(compiled)
        try:
            sig = dense_signature(spec.data, compiled.base_dir, self.target)
        except SpecError as e:
            return [located(e, doc)]
        if sig is None or sig.target != self.target:
            gives = "" if sig is None else f" ({sig.source} gives {sig.target})"
            task = "segmentation" if sig is not None and sig.target == "masks" else "image_to_image"
            other = "" if sig is None else f"; `task: {task}` learns {sig.target}"
            return [error(doc, f"task {self.name} learns {self.target} for pictures{gives}", ("data", "source"),
                          f"use {self.sources}{other}")]
        (name, shape), = graph.inputs.items()
        binding = _binding(shape, sig.shape)
        if binding is None:
            where = base + (("inputs", name) if next(iter(spec.networks.values())).inputs else ("input",))
            return [error(doc, f"{sig.source} gives pictures of {list(sig.shape)}, but the model's input is "
                               f"{list(shape)}", where, f"e.g. `input: {list(sig.shape)}`", key=True)]
        from udlc.compiler.infer import steps

        for symbol, step in steps(s for node in graph.nodes.values() for s in node.shapes).items():
            if binding.get(symbol, 0) % step:
                where = base + (("inputs", name) if next(iter(spec.networks.values())).inputs else ("input",))
                return [error(doc, f"the network divides {symbol} by {step} (its layers halve it), so {symbol} must "
                                   f"be a multiple of {step}, but {sig.source} gives pictures of {list(sig.shape)}",
                              where, f"pad or crop the pictures to a multiple of {step}, or halve {symbol} fewer times",
                              key=True)]
        out = bind(graph.shape_of(graph.outputs[0]), binding)
        problem = self.output_problem(sig, out)
        if problem is None:
            return []
        node = output_node(graph)
        return [SpecError(problem[0], path=node.path, span=node.span, hint=problem[1])]

    def output_problem(self, sig: Any, out: tuple[int, ...]) -> tuple[str, str] | None:
        """(what is wrong, the fix) where the output, at the data's sizes, does not fit the targets."""
        raise NotImplementedError  # each task says

    def served(self, compiled: Compiled) -> list[Served]:
        return [Served(self.network(compiled), 0, self.serves, self.answers)]

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        from udlc.data.dense import load_dense

        try:
            data = load_dense(compiled.spec.data, compiled.base_dir, compiled.spec.seed, self.target)
        except SpecError as e:
            raise located(e, compiled.doc) from None
        graph = self.graph(compiled)
        out = graph.shape_of(graph.outputs[0])
        if data.classes is not None and isinstance(out[0], int) and out[0] < len(data.classes):
            node = output_node(graph)  # an .npz's classes are known once its masks are read
            raise SpecError(f"the masks hold class ids up to {len(data.classes) - 1}, but the model outputs "
                            f"{out[0]} logits per pixel", path=node.path, span=node.span,
                            hint=f"end the model with `conv2d: {{out_channels: {len(data.classes)}, kernel_size: 1}}`")
        return data

    def start(self, compiled: Compiled, data: Any, device: Any) -> SupervisedState:
        import torch

        from udlc.objectives.losses import make_loss

        net, norm = self.network(compiled), data.target_normalization
        ids = self.output_ids(compiled.spec, compiled.graphs[net])
        return SupervisedState(
            data, net=net, input=next(iter(self.graph(compiled).inputs)), ids=ids, loss_weights=self.weights(ids),
            loss_fn=make_loss(compiled.spec.loss, device),
            # (C, 1, 1): a target picture's channels, broadcast over its pixels (supervised's are per column)
            target_norm=None if norm is None else tuple(torch.as_tensor(a, device=device)
                                                        for a in (norm.shift, norm.scale)),
            mix=None)

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        graph, data = self.graph(compiled), state.data
        norm = data.target_normalization
        return {
            "task": self.name,
            "target": "classification" if data.classes is not None else "regression",
            "classes": data.classes,
            "input_names": list(graph.inputs),
            "input_shapes": [list(s) for s in graph.inputs.values()],
            "sample_shapes": [list(data.input_shape)],
            "normalization": data.normalization.to_json(),
            "target_normalization": norm.to_json() if norm is not None else None,
            "value_range": list(data.value_range) if data.value_range is not None else None,
            "pictures": pictures(compiled.spec.data),  # a folder's: the exported file resizes any picture to these
        }

    def chance_loss(self, compiled: Compiled, state: Any) -> tuple[float, str] | None:
        """ln K for K classes of pixels; the target pictures' variance (per value, in their units) for mse."""
        import math

        import numpy as np

        data = state.data
        if data.classes is not None:
            return math.log(len(data.classes)), f"ln {len(data.classes)} for {len(data.classes)} classes"
        if compiled.spec.loss.type != "mse":
            return None
        y = np.asarray(data.y_train, np.float64)
        if data.target_normalization is not None:
            y = data.target_normalization.invert(y)
        return float(y.reshape(len(y), -1).var(axis=0).mean()), "the targets' variance: guessing their mean"


@register
class Segmentation(_Dense):
    name = "segmentation"
    example = "segmentation.yaml"  # tests/specs/contract/: what the contract test trains
    config = SegmentationOptions
    description = "a class for every pixel: (K, H, W) logits against (H, W) masks, cross_entropy"
    target, losses, metrics = "masks", ("cross_entropy",), ("pixel_accuracy", "mean_iou")
    serves, answers = MASKS, "softmax"
    sources = ("data.source: shape_masks; an .npz with x (N, C, H, W) pictures and y (N, H, W) class ids; or a folder "
               "of pictures with `targets:` a folder of masks")

    def output_problem(self, sig: Any, out: tuple[int, ...]) -> tuple[str, str] | None:
        classes = len(sig.classes) if sig.classes is not None else None
        k = classes or (out[0] if len(out) == 3 else "K")
        want = f"({k}, {', '.join(map(str, sig.target_shape))})"
        if len(out) == 3 and tuple(out[1:]) == tuple(sig.target_shape) and (classes is None or out[0] == classes):
            return None
        per_class = "one logit per class" if classes is None else f"{classes} logits, one per class,"
        message = (f"segmentation needs {per_class} at every pixel of the {sig.target_shape[0]}×{sig.target_shape[1]} masks: {want}; the model "
                   f"outputs {tuple(out)}")
        if len(out) != 3:
            return message, (f"keep the picture's height and width: end the model with `conv2d: {{out_channels: {k}, "
                             "kernel_size: 1}` (no `flatten` or `linear`)")
        if tuple(out[1:]) != tuple(sig.target_shape):
            return message, (f"bring the {out[1]}×{out[2]} output to {sig.target_shape[0]}×{sig.target_shape[1]}: "
                             "`upsample`, `conv_transpose2d` or `pixel_shuffle` after pooling, or padding that keeps "
                             "the size")
        return message, f"end the model with `conv2d: {{out_channels: {k}, kernel_size: 1}}`"


@register
class ImageToImage(_Dense):
    name = "image_to_image"
    example = "image_to_image.yaml"  # tests/specs/contract/: what the contract test trains
    config = ImageToImageOptions
    description = "a picture for a picture (super-resolution, denoising): mse, mae or huber against target pictures"
    target, losses, metrics = "pictures", ("mse", "mae", "huber"), ("psnr", "mae", "rmse")
    serves, answers = PICTURES, "identity"
    sources = ("data.source: digits_2x; an .npz with x (N, C, H, W) pictures and y (N, C, H, W) targets; or a "
               "folder of pictures with `targets:` a folder of target pictures")

    def output_problem(self, sig: Any, out: tuple[int, ...]) -> tuple[str, str] | None:
        want = tuple(sig.target_shape)
        if tuple(out) == want:
            return None
        message = f"the target pictures are {want}; the model outputs {tuple(out)}"
        if len(out) != 3:
            return message, (f"keep the picture's height and width: end the model with `conv2d: {{out_channels: "
                             f"{want[0]}, kernel_size: 1}}` (no `flatten` or `linear`)")
        if tuple(out[1:]) != want[1:]:
            # one whole factor on both axes: the sub-pixel convolution that upscales by it
            r = want[1] // out[1] if want[1] % out[1] == 0 and want[2] == out[2] * (want[1] // out[1]) else None
            how = (f"`conv2d: {{out_channels: {want[0] * r * r}, kernel_size: 3, padding: 1}}` then "
                   f"`pixel_shuffle: {r}`" if r else "`upsample` or `pixel_shuffle` to the target's size")
            return message, f"bring the {out[1]}×{out[2]} output to {want[1]}×{want[2]}: end with {how}"
        return message, f"end the model with `conv2d: {{out_channels: {want[0]}, kernel_size: 1}}`"


def _binding(shape: tuple, natural: tuple[int, ...]) -> dict[str, int] | None:
    """The sizes of the input's symbols that make it the data's picture shape; None where it cannot be."""
    from udlc.compiler.infer import bind, symbols

    if len(shape) != len(natural):
        return None
    binding: dict[str, int] = {}
    for d, n in zip(shape, natural):
        if isinstance(d, str) and d in symbols((d,)) and binding.setdefault(d, n) != n:
            return None
    try:
        return binding if bind(shape, binding) == tuple(natural) else None
    except KeyError:  # an offset symbol (H-2) in a declared input: not a picture size the data can bind
        return None
