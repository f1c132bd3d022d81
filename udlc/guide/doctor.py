"""`udlc doctor SPEC`: the practical chapter's checklist, run in well under a minute on a CPU, each item a verdict
with its evidence — the data; the output layer and the initial loss against its expected value; whether the
model can overfit one small batch (and if not, which parameters no gradient reaches, by spec line); the gradient
flow layer by layer; a learning-rate range test."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Iterator, TYPE_CHECKING

import torch

from udlc.compiler.pipeline import frozen_nodes
from udlc.guide.data_checks import Finding, check_data
from udlc.trainer.debug import TrainingDiverged, where_in_spec
from udlc.guide.probe import endless, loss_of, probe_setup

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

OVERFIT_BATCH = 32  # samples in the batch the model must learn by heart
OVERFIT_STEPS, OVERFIT_SECONDS = 300, 20.0
LR_STEPS, LR_SECONDS = 100, 20.0  # the learning-rate range test's sweep (udlc.guide.lr_find)
FLOW_STEPS = 5  # steps of ordinary training whose gradients are measured
# A layer's |grad|/|weight| vanishes 1000× below the largest layer's, explodes above 10 (a step outgrows the weights).
VANISHING, EXPLODING = 1000.0, 10.0
CRAWL = 1000.0  # an lr this far below the range test's suggestion barely moves the weights


def doctor(compiled: Compiled) -> list[Finding]:
    task = compiled.task
    data = task.load_data(compiled)
    findings = [check_data(data, task.name), check_output(compiled, data), overfit_one_batch(compiled, data),
                gradient_flow(compiled, data)]
    findings.append(check_lr(compiled, data))
    return findings


# ---- the output layer and the initial loss -------------------------------------------------------------------

def check_output(compiled: Compiled, data: Any) -> Finding:
    """A squashing layer before a loss that squashes itself, and the untrained model's loss against ln C."""
    spec = compiled.spec
    if spec.loss is None:
        return Finding("initial loss", "skip", f"task {compiled.task.name} defines its own losses: no expected "
                                               "initial value to compare with")
    squashed = squashed_output(compiled)
    if squashed:
        return Finding("initial loss", "fail", squashed)
    s = probe_setup(compiled, data)
    expected = compiled.task.chance_loss(compiled, s.run_state)
    if expected is None:
        return Finding("initial loss", "skip", f"no expected initial value known for {spec.loss.type} on this task")
    value, why = expected
    measured = s.task.evaluate(s, _first(s, 4))["loss"]
    ratio = measured / value if value > 0 else math.inf
    evidence = f"initial loss {measured:.4g}, expected about {value:.4g} ({why})"
    if 0.7 <= ratio <= 1.5:
        return Finding("initial loss", "ok", evidence)
    status = "fail" if ratio > 3 or ratio < 0.5 else "warn"  # random logits of some spread sit a little above
    return Finding("initial loss", status, evidence + (
        " — the untrained model is confidently wrong: check the output layer's size, scale and init, and that "
        "the loss fits the targets" if ratio > 1 else " — lower than chance before training: the targets may leak "
                                                        "into the inputs, or the loss is not what it seems"))


def squashed_output(compiled: Compiled) -> str | None:
    """An output that passes through softmax or sigmoid before a loss that applies its own: the commonest
    wrong output layer (probabilities squashed twice bound the loss away from zero)."""
    from udlc.spec.losses import LOSSES

    loss = compiled.spec.loss
    answers = LOSSES[loss.type].answers if loss is not None else None
    for graph in compiled.graphs.values():
        for ref in graph.outputs:
            node = graph.nodes.get(ref.partition(".")[0])
            if node is not None and answers in ("softmax", "sigmoid") and node.op in ("softmax", "sigmoid"):
                return (f"the output passes through '{node.name}' ({node.op}){where_in_spec(graph, node.name)}, but "
                        f"{loss.type} applies its own {answers} to logits: probabilities squashed twice bound the "
                        "loss away from zero and flatten its gradient — drop that layer (predict still answers "
                        "probabilities)")
    return None


# ---- overfit one batch ---------------------------------------------------------------------------------------

def overfit_one_batch(compiled: Compiled, data: Any) -> Finding:
    """Train on one small batch until its loss is near zero; if it will not go, say why."""
    s = probe_setup(compiled, data)
    small = s.task.batches(s.run_state, "train", batch_size=min(OVERFIT_BATCH, compiled.spec.train.batch_size),
                           shuffle=False, device=s.device)
    batch = next(iter(small.epoch_batches(None)))
    frozen = [(net, node) for net, graph in compiled.graphs.items() for node in frozen_nodes(compiled.spec, graph)]
    grads = GradientRecorder(s)
    losses: list[float] = []
    floor = loss_floor(compiled, s.run_state)
    started = time.perf_counter()
    try:
        for _ in range(OVERFIT_STEPS):
            values, size = s.train_step(batch)
            if not losses and "loss" not in values:
                return Finding("overfit one batch", "skip", f"task {s.task.name} trains adversaries "
                               f"({', '.join(values)}): their losses do not go to zero on any batch")
            losses.append(loss_of(values))
            if losses[-1] - floor < 0.01 * (losses[0] - floor) or time.perf_counter() - started > OVERFIT_SECONDS:
                break
    except TrainingDiverged as e:
        return Finding("overfit one batch", "fail", "the loss became non-finite on one batch",
                       str(e).splitlines()[1:])
    finally:
        grads.close()
    first, last = losses[0], statistics.fmean(losses[-5:])
    evidence = f"loss {first:.4g} → {last:.4g} in {len(losses)} steps on one batch of {size}" + (
        f" (its floor is {floor:.3g}: label smoothing)" if floor else "")
    learned = (last - floor) / max(first - floor, 1e-12)  # the share of the way to the floor still left
    zero = s.task.loss_floor_zero
    if not zero:
        evidence += f" (task {s.task.name}'s loss has a floor of its own: it need not reach zero)"
    if learned < (0.1 if zero else 0.9):
        return Finding("overfit one batch", "ok", evidence)
    reasons = [f"no gradient reaches layer '{node}'{where_in_spec(s.graphs[net], node)}: nothing it computes "
               "reaches the loss (a branch that leads nowhere, or an operation without a gradient)"
               for net, node in grads.unreached()]
    reasons += [f"layer '{node}'{where_in_spec(s.graphs[net], node)} is frozen (train.freeze)" for net, node in frozen]
    squashed = squashed_output(compiled)
    if squashed:
        reasons.append(squashed)
    lr = max(group["lr"] for opt in s.optimizers.values() for group in opt.param_groups)
    if time.perf_counter() - started > OVERFIT_SECONDS and learned < 0.7:
        return Finding("overfit one batch", "warn", evidence + f": still falling when the {OVERFIT_SECONDS:.0f} s "
                       "budget ran out (a slow model on this machine) — inconclusive", reasons)
    structural = bool(reasons)
    if not reasons:
        reasons = [f"every layer gets a gradient, yet at lr {lr:g} the batch is not learned: try a lower or higher "
                   "learning rate (the learning-rate item below), a larger model, or check that the targets belong "
                   "to their inputs"]
    status = "fail" if structural or (zero and learned > 0.5) else "warn"
    return Finding("overfit one batch", status, evidence + ": the model does not learn even one batch by heart",
                   reasons)


def loss_floor(compiled: Compiled, state: Any) -> float:
    """The least loss a perfect model scores: 0, but for cross-entropy against label-smoothed targets their
    entropy."""
    loss = compiled.spec.loss
    smoothing = getattr(loss, "label_smoothing", 0.0) or 0.0
    classes = len(compiled.task.info(compiled, state).get("classes") or [])
    if not smoothing or classes < 2:
        return 0.0
    right, wrong = 1 - smoothing + smoothing / classes, smoothing / classes
    return -(right * math.log(right) + (classes - 1) * wrong * math.log(wrong))


# ---- gradient flow -------------------------------------------------------------------------------------------

class GradientRecorder:
    """Each layer's gradient norm as backward accumulates it, by (network, node); the layers that none reached."""

    def __init__(self, s: Any):
        self.s = s
        self.reached: dict[tuple[str, str], bool] = {}
        self.squares: dict[tuple[str, str], list[float]] = {}  # weight matrices' squared gradient norms, by layer
        self.handles = []
        for net in s.optimizers:  # the trained networks, not the shadow copies (an EMA)
            for name, p in s.module(net).named_parameters():
                if p.requires_grad:
                    key = (net, name.split(".")[0])
                    self.reached.setdefault(key, False)
                    self.handles.append(p.register_post_accumulate_grad_hook(self._hook(key)))

    def _hook(self, key: tuple[str, str]):
        def record(p: torch.Tensor) -> None:
            self.reached[key] = True
            if p.dim() >= 2:  # a norm layer's scale (all ones at init) says nothing of the flow through the layers
                self.squares.setdefault(key, []).append(float(p.grad.detach().float().norm()) ** 2)
        return record

    def unreached(self) -> list[tuple[str, str]]:
        return [key for key, reached in self.reached.items() if not reached]

    def ratios(self) -> dict[tuple[str, str], float]:
        """Each layer's gradient norm over its weight matrices' norm (scale-free across layer sizes)."""
        out = {}
        for (net, node) in self.reached:  # in the networks' order, input to output
            squares = self.squares.get((net, node))
            if not squares:
                continue
            weights = [p for p in getattr(self.s.module(net), node).parameters() if p.dim() >= 2]
            weight = math.sqrt(sum(float(p.detach().float().pow(2).sum()) for p in weights))
            grad = math.sqrt(sum(squares) / len(squares) * len(weights))  # per step, over the layer's matrices
            out[(net, node)] = grad / weight if weight > 0 else grad
        return out

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def gradient_flow(compiled: Compiled, data: Any) -> Finding:
    s = probe_setup(compiled, data)
    grads = GradientRecorder(s)
    batches = endless(s)
    try:
        for _ in range(FLOW_STEPS):
            s.train_step(next(batches))
    except TrainingDiverged as e:
        return Finding("gradient flow", "fail", "the loss became non-finite within a few steps",
                       str(e).splitlines()[1:])
    finally:
        grads.close()
    ratios = grads.ratios()
    where = {key: f"'{key[1]}'{where_in_spec(s.graphs[key[0]], key[1])}" for key in grads.reached}
    finite = [r for r in ratios.values() if math.isfinite(r) and r > 0]
    top = max(finite, default=0.0)  # the layer learning fastest, usually the one next to the loss
    # Each kind of fault: (the layer, what was measured) for every layer that shows it.
    groups: dict[str, list[tuple[str, str]]] = {kind: [] for kind in ("unreached", "broken", "vanishing", "exploding")}
    groups["unreached"] = [(f"layer {where[key]}", "") for key in grads.unreached()]
    for key, r in ratios.items():
        if not math.isfinite(r) or r == 0:
            groups["broken"].append((f"layer {where[key]}", f"gradient {'exactly zero' if r == 0 else 'not finite'}"))
        elif r < top / VANISHING:
            groups["vanishing"].append((f"layer {where[key]}", f"|grad|/|weight| {r:.2g}, {top / r:.2g}× below"))
        elif r > EXPLODING:
            groups["exploding"].append((f"layer {where[key]}", f"|grad|/|weight| {r:.2g}"))
    spread = (f"{len(ratios)} layer{'s' * (len(ratios) != 1)} with weights, |grad|/|weight| from {min(finite):.2g} to {top:.2g} "
              f"over {FLOW_STEPS} steps") if finite else "no layer received a gradient"
    sentences = {
        "unreached": "no gradient reaches {n}: nothing it computes reaches the loss (a branch that leads nowhere, "
                     "or an operation without a gradient), so its weights never train",
        "broken": "{n} get a zero or non-finite gradient: dead units, a zero multiplier, or an overflow",
        "vanishing": f"gradients vanish in {{n}}: over {VANISHING:.0f}× smaller, relative to their weights, than in "
                     f"the fastest layer ({top:.2g}) — normalization, residual connections, ReLU-family activations "
                     "or a better init help",
        "exploding": f"gradients explode in {{n}}: above {EXPLODING:g}× their weights, one step can outgrow them — "
                     "clip gradients (train.grad_clip), lower the lr, or normalize",
    }
    found = [kind for kind, lines in groups.items() if lines]
    if not found:
        return Finding("gradient flow", "ok", spread)
    count = {kind: (lines[0][0] if len(lines) == 1 else f"{len(lines)} layers") for kind, lines in groups.items()}
    details = [sentences[kind].format(n=count[kind]) for kind in found[1:]]
    details += [f"{layer}: {measured}" for kind in found for layer, measured in groups[kind]
                if len(groups[kind]) > 1 or measured] + [spread]
    status = "fail" if groups["unreached"] or groups["broken"] else "warn"
    return Finding("gradient flow", status, sentences[found[0]].format(n=count[found[0]]), details)


# ---- the learning rate ---------------------------------------------------------------------------------------

def check_lr(compiled: Compiled, data: Any) -> Finding:
    from udlc.errors import UdlcError
    from udlc.guide.lr_find import lr_find

    try:
        sweep = lr_find(compiled, data, steps=LR_STEPS, seconds=LR_SECONDS)
    except UdlcError as e:
        return Finding("learning rate", "skip", str(e))
    lrs = {net: compiled.spec.optimizer_of(net).lr for net in compiled.graphs}
    lr = max(lrs.values())
    if sweep.suggestion is None:
        return Finding("learning rate", "warn", sweep.summary())
    if sweep.diverged_at is not None and lr >= sweep.diverged_at:
        return Finding("learning rate", "fail", f"optimizer.lr {lr:g} is where the loss already diverged in the "
                       "range test: lower it", [sweep.summary()])
    if lr < sweep.suggestion / CRAWL:
        return Finding("learning rate", "warn", f"optimizer.lr {lr:g} is over {CRAWL:.0f}× below the range test's "
                       "suggestion: training will crawl", [sweep.summary()])
    return Finding("learning rate", "ok", f"optimizer.lr {lr:g} is within the range where the loss falls",
                   [sweep.summary()])


def _first(s: Any, n: int) -> Any:
    """The first `n` training batches in order (an untrained model's loss needs no more)."""
    batches = s.task.batches(s.run_state, "train", batch_size=s.spec.train.batch_size, shuffle=False, device=s.device)

    class First:
        def __getattr__(self, name: str) -> Any:  # the rest as the split's batches say (a text's `split`)
            return getattr(batches, name)

        def __len__(self) -> int:
            return min(n, len(batches))

        def epoch_batches(self, generator: Any) -> Iterator[Any]:
            for i, batch in enumerate(batches.epoch_batches(generator)):
                if i == n:
                    return
                yield batch
    return First()
