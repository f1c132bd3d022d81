"""`udlc summary`: a table like Keras' model.summary(), from the static graph (no torch)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from udlc.compiler.pipeline import Compiled
from udlc.layers.registry import fmt


def human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def summary_table(compiled: Compiled) -> Table:
    g = compiled.graph
    table = Table(title=f"{compiled.spec.name}", title_justify="left")
    for col, justify in (("layer", "left"), ("type", "left"), ("input from", "left"), ("output shape", "left"),
                         ("params", "right"), ("FLOPs", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name, shape in g.inputs.items():
        table.add_row(name, "input", "", fmt(shape), "0", "0")
    for node in g.nodes.values():
        table.add_row(node.name, node.op, ", ".join(node.inputs), fmt(node.shape) if node.shape else "?",
                      f"{node.params:,}", human(node.flops))
    table.add_section()
    table.add_row("total", "", "", ", ".join(fmt(s) for s in g.output_shapes if s), f"{g.total_params:,}",
                  human(g.total_flops))
    return table


def print_summary(compiled: Compiled) -> None:
    import sys

    # Off a terminal rich assumes 80 columns and truncates names; a file or pipe can take a wide table.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(summary_table(compiled))
    g = compiled.graph
    console.print(f"parameters: {g.total_params:,} ({human(g.total_params * 4)}B as float32) · "
                  f"FLOPs per sample: {human(g.total_flops)}")
