"""TensorBoard event files in the run folder: each epoch's row as scalars, and the networks as udlc sees them.

`tensorboard --logdir runs` then shows every run. The graph is drawn from the typed graphs (a node per layer,
named by network, with its output shape and the spec line it came from) instead of tracing the model with
torch.jit: no forward pass, and the names are the spec's, not the tracer's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A row's key → the TensorBoard tag: train and val of one value share a chart (loss/train beside loss/val).
_SECTIONS = {"lr": "optim/lr", "seconds": "speed/epoch_seconds", "samples_per_s": "speed/samples_per_s"}


def tag(key: str) -> str:
    if key in _SECTIONS:
        return _SECTIONS[key]
    if key.startswith("grad_norm"):
        return "optim/" + key
    split, _, name = key.partition("_")
    return f"{name}/{split}" if split in ("train", "val") and name else key


class Board:
    """One run's event files. `purge_step`: a resumed run's first epoch; TensorBoard drops what an earlier
    process wrote from that epoch on (those rows were dropped from metrics.csv too)."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir), purge_step=purge_step)

    def epoch(self, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(tag(key), value, row["epoch"])

    def graphs(self, graphs: dict[str, Any]) -> None:
        self.writer._get_file_writer().add_onnx_graph(graph_def(graphs))  # a GraphDef, whoever built it

    def close(self) -> None:
        self.writer.close()


def graph_def(graphs: dict[str, Any]) -> Any:
    """Every network's inputs and layers as TensorBoard nodes: `<network>/<node>`, edges from its inputs."""
    from tensorboard.compat.proto.graph_pb2 import GraphDef
    from torch.utils.tensorboard._proto_graph import node_proto

    nodes = []
    for network, graph in graphs.items():
        for name, shape in graph.inputs.items():
            nodes.append(node_proto(f"{network}/{name}", op="input", outputsize=_dims(shape)))
        for node in graph.nodes.values():
            where = f"{node.path}" + (f" ({node.span.file}:{node.span.line})" if node.span else "")
            nodes.append(node_proto(f"{network}/{node.name}", op=node.op,
                                    input=[f"{network}/{ref.partition('.')[0]}" for ref in node.inputs],
                                    outputsize=_dims(node.shape) if node.shape is not None else None,
                                    attributes=f"{where}; {node.params:,} parameters"))
    return GraphDef(node=nodes)


def _dims(shape: tuple) -> list[int]:
    """A sample's shape with the batch first; a symbolic size (T, N) is unknown (-1) to TensorBoard."""
    return [-1] + [d if isinstance(d, int) else -1 for d in shape]
