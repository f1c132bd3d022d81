"""The task registry: what `task:` in a spec can name, and the contract every task keeps.

A task says what training does with the spec's networks. It declares its options (a pydantic config),
checks at `udlc check` time, without torch, that the networks and the data fit it, and at train time
loads the data, takes one training step, evaluates a split, and says which network outputs are served
(exported to ONNX, and how predict turns them into answers). The loop in udlc.trainer is the same for
every task: it calls these, and knows nothing of losses or targets.

A task instance holds its options only. What a run builds — the data, the network the data feeds and its
input names, loss functions, target scales — is the task's RunState (a dataclass per task), which `start`
returns and the loop hands back: to `batches`/`info`/`sizes` directly, to the steps as `s.run_state`.
The loop's `s` (udlc.trainer.loop.Setup) offers the services a step needs: `s.step` (optimizer steps
done), `s.stepped` (this batch stepped them), `s.counted`, `s.gather` and `s.sum` (a split shared between
processes).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Protocol

from udlc.errors import SpecError, SpecErrors, did_you_mean, one_of
from udlc.spec.base import StrictModel

if TYPE_CHECKING:  # the check path never imports torch
    import torch

    from udlc.compiler.pipeline import Compiled
    from udlc.spec.spec import Spec
    from udlc.trainer.loop import Setup


@dataclass(frozen=True)
class Served:
    """One exported output: a network's output (by index), what its file serves, and the file it is served in."""

    network: str
    output: int  # index into the network's graph outputs
    kind: str  # what the file answers: a served kind (udlc.tasks.served.KINDS), which the metadata names
    # What the export makes of the output, as a loss's `answers` say: 'softmax' (class probabilities), 'sigmoid'
    # (of logits: a binary class's probability, or values in [0, 1] put back in the data's units) or 'identity'.
    answers: str = "identity"
    file: str = "model"  # the run folder's <file>.onnx
    weights: str | None = None  # the checkpoint's weights to serve, when not the network's own (its EMA's)

    def __post_init__(self) -> None:
        from udlc.tasks.served import KINDS

        if self.kind not in KINDS:
            raise ValueError(f"unknown served kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if self.answers not in ("softmax", "sigmoid", "identity"):
            raise ValueError(f"unknown answers {self.answers!r}: expected softmax, sigmoid or identity")


@dataclass
class RunState:
    """What one run of a task builds and its later calls read (a task instance holds its options only): the
    data as `load_data` gave it. Each task extends it with its own typed fields (the network the data feeds,
    its inputs, loss functions, scales); `Task.start` builds it, and nothing replaces its fields afterwards
    (an evaluation's own random generator is reseeded in place)."""

    data: Any


@contextmanager
def evaluating(*models: Any) -> Iterator[None]:
    """The models in eval mode without gradients for an evaluation, each back in its own mode after (a task's
    evaluate runs between training steps, and in `udlc eval` on models that were never training)."""
    import torch

    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


class Batches(Protocol):
    """A split's batches, as `Task.batches` gives them (udlc.data.batches, a Shard of them on several processes)."""

    def __len__(self) -> int: ...

    def epoch_batches(self, generator: torch.Generator | None) -> Iterator[dict[str, Any]]: ...


class Task:
    """Base of every task. Subclasses set `name` and `config` and implement the methods below. Who calls what:
    `udlc check` calls check/logged/served/monitor/shadows/optimizer_steps (no torch); a run (udlc.trainer.run)
    calls load_data → start → info, sizes, batches → train_step/evaluate each epoch → after_epoch → (test)
    evaluate, quality → after_training; doctor, lr-find, `udlc eval` and report call load_data → start →
    batches and the steps too, through the same Setup."""

    name: ClassVar[str]
    config: ClassVar[type[StrictModel]]
    description: ClassVar[str] = ""
    takes_loss: ClassVar[bool] = True  # the spec's `loss:` is this task's; False: the task defines its losses
    mixes_targets: ClassVar[bool] = False  # its step takes augmentations that mix samples and targets (mixup)
    maximized: ClassVar[frozenset[str]] = frozenset()  # values it logs itself where larger is better (elbo)
    loss_floor_zero: ClassVar[bool] = True  # a perfect model's loss is near 0 (udlc.runs.diagnosis reads it)
    splits_batches: ClassVar[bool] = True  # its batches are rows that processes can share (not whole graphs)
    splits_evaluation: ClassVar[bool] = False  # its evaluate joins the processes' shares of a split (supervised, LM)
    reads_graphs: ClassVar[bool] = False  # `data.nodes` (a graph's node file) is for it (check refuses it elsewhere)
    # Its data goes through udlc.data.prepare, which draws data.fraction/limit's subset of the training split; the
    # others split texts, graphs and picture pairs their own way, and check refuses the two (checks.check_subsets).
    draws_subsets: ClassVar[bool] = False

    # A small spec that trains this task in seconds: tests/test_task_contract.py runs every registered task
    # from it (check, train, resume, export, parity, its runtime's answer, doctor). Relative to tests/specs/contract/.
    example: ClassVar[str | None] = None

    def __init__(self, options: StrictModel, where: tuple = ("task",)):
        self.options = options
        self.where = where  # where the options are written in the spec: `task` or `task.<name>`

    # ---- check time: plain data, no torch ---------------------------------------------------------

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        """Everything training would refuse, found from the spec, the typed graphs and the data's header. Called by
        `udlc check` (udlc.tasks.check.check_task), without torch; it leaves nothing on the task."""
        raise NotImplementedError

    def logged(self, spec: Spec, has_val: bool) -> list[str]:
        """The names of the values each epoch's row holds: check time, where early stopping and plateau name one
        to watch (udlc.tasks.checks.check_monitors) and udlc.spec.tuning a tune's metric."""
        raise NotImplementedError

    def served(self, compiled: Compiled) -> list[Served]:
        """The network outputs an export writes, each in its file (udlc.exporter; check time)."""
        raise NotImplementedError

    def monitor(self, has_val: bool) -> str:
        """The logged value that picks the best checkpoint when early stopping names none: the loop
        (udlc.trainer.loop.monitored) and `udlc train --seeds` read it."""
        return "val_loss" if has_val else "train_loss"

    def higher_is_better(self, logged: str) -> bool:
        """For a value this task logs (val_elbo, train_loss, val_accuracy): is a larger one an improvement? The
        task's own values are minimized unless it names them in `maximized`; the spec's metrics say themselves.
        Asked by the loop (best checkpoint, early stopping, plateau), tune and seeds."""
        from udlc.spec.metrics import METRICS, higher_is_better

        name = re.sub(r"^(train|val|test)_", "", logged)
        if name in self.maximized:
            return True
        if name == "loss" or name.endswith("_loss") or any(entry.logs(name) for entry in METRICS):
            return higher_is_better(logged)
        return False

    def shadows(self, compiled: Compiled) -> dict[str, str]:
        """Copies of networks that no optimizer trains but that are checkpointed (and may be served) with them,
        e.g. an exponential moving average of a network's weights: each copy's name → the network copied. Read by
        check (FSDP refuses them), trainer.run.build_models (which makes them) and the exporter."""
        return {}

    def optimizer_steps(self, network: str, steps: int) -> int:
        """How many times `network`'s optimizer steps in `steps` steps of the run: trainer.run spans each
        network's schedule over these."""
        return steps

    # ---- train time --------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        """The spec's data, split (from the spec's seed) and normalized; a data mistake is a SpecError at its place
        in the spec. Pure: the task keeps nothing. Called first by a run, doctor, lr-find, `udlc eval`, baseline."""
        raise NotImplementedError

    def start(self, compiled: Compiled, data: Any, device: torch.device) -> RunState:
        """The run state for `data` (what `load_data` gave): which network the data feeds under which input names,
        the loss functions and scales the steps use, on `device`. Called once a run has loaded its data (by
        trainer.run, doctor and the probes, `udlc eval`), before any batch is made; later calls read it."""
        return RunState(data)

    def info(self, compiled: Compiled, state: RunState) -> dict[str, Any]:
        """What run.json records for export and predict (classes, input names and shapes, normalization, ...).
        Called by trainer.run when a run starts, and by doctor."""
        raise NotImplementedError

    def sizes(self, state: RunState) -> str:
        """The splits' sizes as the training output's first line (trainer.run) shows them: `train/val/test`."""
        raise NotImplementedError

    def batches(self, state: RunState, split: str, *, batch_size: int, shuffle: bool,
                device: torch.device) -> Batches | None:
        """A split's batches, or None for an empty split. Called by the loop for every split, by report for the
        test split, by doctor and the probes for a few."""
        raise NotImplementedError

    def test_outputs(self, s: Setup, batch: dict[str, Any]) -> torch.Tensor:
        """The served network's outputs for a batch of `batches`, for report's per-class tables (networks in
        eval mode): the tasks that serve classes implement it."""
        raise NotImplementedError

    def chance_loss(self, compiled: Compiled, state: RunState) -> tuple[float, str] | None:
        """What an untrained model should score, and why (doctor's first check): ln C for C classes (uniform
        guesses), ln 2 per binary target, the targets' variance for a squared error (guessing the mean, in the
        targets' units); None where the task's loss has no chance level to name. Called by doctor."""
        import math

        import numpy as np

        data, loss = state.data, compiled.spec.loss.type
        info = self.info(compiled, state)
        classes = info.get("classes") or []
        if not self.loss_floor_zero:
            return None  # the spec's loss is one term of the task's (a VAE's reconstruction): no chance level
        if loss == "cross_entropy" and len(classes) > 1:
            return math.log(len(classes)), f"ln {len(classes)} for {len(classes)} classes"
        if info.get("target") is None:
            return None  # an autoencoder's bce or mse compares with its inputs, not with targets
        if loss == "bce":
            return math.log(2), "ln 2 per binary target"
        if loss == "mse" and hasattr(data, "y_train"):
            y = np.asarray(data.y_train, dtype=np.float64)
            norm = getattr(data, "target_normalization", None)
            if norm is not None:
                y = y * norm.scale.reshape(-1) + norm.shift.reshape(-1)
            return float(y.reshape(len(y), -1).var(axis=0).mean()), "the targets' variance: guessing their mean"
        return None

    def train_step(self, s: Setup, batch: dict[str, Any]) -> tuple[dict[str, float], int]:
        """One batch: compute the losses, hand each to `s.update(network, loss, batch)`. Returns the values
        to log (averaged over the epoch, weighted by the batch size) and the batch size. Called by the loop
        for every training batch (s.run_state is the task's RunState), by doctor and lr-find for a few."""
        raise NotImplementedError

    def evaluate(self, s: Setup, batches: Batches) -> dict[str, float]:
        """Loss and metrics over a split, in eval mode (training mode comes back after). Called by the loop for
        the validation split each epoch, by trainer.run and `udlc eval` for the test split, by doctor."""
        raise NotImplementedError

    def quality(self, s: Setup) -> dict[str, float]:
        """Measures of what a generative model makes, beside the test split's losses: trainer.run.test_metrics
        calls it for results.json and `udlc eval`, with the final weights loaded. None by default."""
        return {}

    def after_epoch(self, s: Setup) -> None:
        """Anything to write into the run folder after an epoch's row is logged (the loop calls it every epoch,
        in every process: `s.main` says which one writes); nothing by default."""

    def after_training(self, s: Setup) -> None:
        """Anything to write into the run folder once the final weights are loaded (a generative task's
        samples.png); nothing by default. Called by the main process only."""


TASKS: dict[str, type[Task]] = {}


def register(task: type[Task]) -> type[Task]:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} registered twice")
    if task.config.model_fields["type"].default != task.name:
        raise ValueError(f"task {task.name!r}: its config's `type` must default to its name")
    TASKS[task.name] = task
    return task


def make_task(raw: Any, doc: Any) -> Task:
    """The spec's `task:` (a name, or a mapping with `type` and options) as a Task. Raises SpecErrors."""
    from udlc.spec.validate import validate_model

    if isinstance(raw, str):
        raw = {"type": raw}
    elif isinstance(raw, dict) and "type" not in raw and len(raw) == 1:
        (name, args), = raw.items()  # `task: {auxiliary: {loss_weights: ...}}`
        raw = {"type": name, **(args if isinstance(args, dict) else {})}
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise SpecErrors([SpecError("must be a task name, or a mapping with `type`", path="task",
                                    span=doc.span(("task",)), hint="e.g. task: supervised")])
    name = raw["type"]
    if name not in TASKS:
        raise SpecErrors([SpecError(f"unknown task '{name}'", path="task", span=doc.span(("task",)),
                                    hint=did_you_mean(name, TASKS) or one_of(TASKS))])
    cls = TASKS[name]
    written = doc.data.get("task")
    where = ("task", name) if isinstance(written, dict) and "type" not in written else ("task",)
    return cls(validate_model(cls.config, raw, doc, prefix=where), where)
