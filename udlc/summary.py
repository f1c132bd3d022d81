"""`udlc summary`: a table like Keras' model.summary(), from the static graph (no torch)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from udlc.tasks import Compiled
from udlc.compiler.infer import REPORT_SIZE
from udlc.layers.registry import fmt


def human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def typed(shape: tuple, dtype: str | None) -> str:
    """(T, 256), or (T,) int64: the dtype is named when it is not float32."""
    return fmt(shape) + ("" if dtype in (None, "float32") else f" {dtype}")


def summary_table(compiled: Compiled, network: str) -> Table:
    g = compiled.graphs[network]
    title = compiled.spec.name if compiled.spec.model is not None else f"{compiled.spec.name} · {network}"
    table = Table(title=title, title_justify="left")
    for col, justify in (("layer", "left"), ("type", "left"), ("input from", "left"), ("output shape", "left"),
                         ("params", "right"), ("FLOPs", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name, shape in g.inputs.items():
        table.add_row(name, "input", "", typed(shape, g.dtype_of(name)), "0", "0")
    for node in g.nodes.values():
        outputs = ", ".join(f"{n}: " * bool(node.out_names) + typed(s, d)
                            for n, s, d in zip(node.out_names or ("",) * len(node.shapes), node.shapes, node.dtypes))
        table.add_row(node.name, node.op, ", ".join(node.inputs), outputs or "?", f"{node.params:,}", human(node.flops))
    table.add_section()
    table.add_row("total", "", "", ", ".join(fmt(s) for s in g.output_shapes if s), f"{g.total_params:,}",
                  human(g.total_flops))
    return table


def print_summary(compiled: Compiled) -> None:
    import sys

    # Off a terminal rich assumes 80 columns and truncates names; a file or pipe can take a wide table.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    for network, g in compiled.graphs.items():
        console.print(summary_table(compiled, network))
        at = f" (at {', '.join(f'{s} = {REPORT_SIZE}' for s in g.symbols)})" if g.symbols else ""
        console.print(f"parameters: {g.total_params:,} ({human(g.total_params * 4)}B as float32) · "
                      f"FLOPs per sample: {human(g.total_flops)}{at}")
