"""`udlc summary`: a table like Keras' model.summary(), from the static graph (no torch)."""

from __future__ import annotations

from udlc.compiler.finetune import parameter_counts
from udlc.compiler.infer import REPORT_SIZE
from udlc.layers.registry import fmt
from udlc.tasks import Compiled

COLUMNS = (("layer", "<"), ("type", "<"), ("input from", "<"), ("output shape", "<"), ("params", ">"), ("FLOPs", ">"))
WIDEST = 60  # characters of a cell; longer ones (a concat's many inputs) end in …


def human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def typed(shape: tuple, dtype: str | None) -> str:
    """(T, 256), or (T,) int64: the dtype is named when it is not float32."""
    return fmt(shape) + ("" if dtype in (None, "float32") else f" {dtype}")


def summary_rows(compiled: Compiled, network: str) -> tuple[list[list[str]], list[str]]:
    """The layers' rows (inputs first) and the totals' row."""
    g = compiled.graphs[network]
    rows = [[name, "input", "", typed(shape, g.dtype_of(name)), "0", "0"] for name, shape in g.inputs.items()]
    for node in g.nodes.values():
        outputs = ", ".join(f"{n}: " * bool(node.out_names) + typed(s, d)
                            for n, s, d in zip(node.out_names or ("",) * len(node.shapes), node.shapes, node.dtypes))
        rows.append([node.name, node.op, ", ".join(node.inputs), outputs or "?", f"{node.params:,}",
                     human(node.flops)])
    total = ["total", "", "", ", ".join(fmt(s) for s in g.output_shapes if s), f"{g.total_params:,}",
             human(g.total_flops)]
    return rows, total


def summary_table(compiled: Compiled, network: str) -> str:
    """The table as box-drawn text. Written out here rather than by rich: a zoo model's thousand rows take rich
    half a second to measure, and this a millisecond."""
    rows, total = summary_rows(compiled, network)
    cut = [[c if len(c) <= WIDEST else c[:WIDEST - 1] + "…" for c in row] for row in [*rows, total]]
    widths = [max(len(name), *(len(row[i]) for row in cut)) for i, (name, _) in enumerate(COLUMNS)]

    def line(cells: list[str], bar: str = "│") -> str:
        return f"{bar} " + f" {bar} ".join(f"{c:{a}{w}}" for c, (_, a), w in zip(cells, COLUMNS, widths)) + f" {bar}"

    def rule(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    title = compiled.spec.name if compiled.spec.model is not None else f"{compiled.spec.name} · {network}"
    return "\n".join([title, rule("┏", "┳", "┓", "━"), line([name for name, _ in COLUMNS], "┃"),
                      rule("┡", "╇", "┩", "━"), *(line(row) for row in cut[:-1]), rule("├", "┼", "┤", "─"),
                      line(cut[-1]), rule("└", "┴", "┘", "─")])


def print_summary(compiled: Compiled) -> None:
    for network, g in compiled.graphs.items():
        print(summary_table(compiled, network))
        at = f" (at {', '.join(f'{s} = {REPORT_SIZE}' for s in g.symbols)})" if g.symbols else ""
        print(f"parameters: {g.total_params:,} ({human(g.total_params * 4)}B as float32) · "
              f"FLOPs per sample: {human(g.total_flops)}{at}")
        trainable, frozen = parameter_counts(compiled.spec, g)  # train.freeze, or the base under LoRA
        lora = compiled.spec.lora
        print(f"trainable: {trainable:,} · frozen: {frozen:,}"
              + (f" (LoRA rank {lora.rank}: the adapters and lora.also_train train, the base is frozen)" if lora else
                 " (train.freeze; train.unfreeze releases layers later)" if compiled.spec.train.unfreeze else
                 " (train.freeze)" if frozen else ""))
