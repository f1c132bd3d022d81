"""The task registry: what `task:` in a spec can name, and the contract every task keeps.

A task says what training does with the spec's networks. It declares its options (a pydantic config),
checks at `udlc check` time, without torch, that the networks and the data fit it, and at train time
loads the data, takes one training step, evaluates a split, and says which network outputs are served
(exported to ONNX, and how predict turns them into answers). The loop in udlc.trainer is the same for
every task: it calls these, and knows nothing of losses or targets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from udlc.errors import SpecError, SpecErrors, did_you_mean, one_of
from udlc.spec.base import StrictModel


@dataclass(frozen=True)
class Served:
    """One exported output: a network's output (by index), how it answers, and the file it is served in."""

    network: str
    output: int  # index into the network's graph outputs
    # 'softmax' (class probabilities), 'sigmoid' (binary probability) or 'identity' (values): predict's answers;
    # 'decode' / 'decode_sigmoid' (a latent in, a sample in the data's units out), 'encode' (data in, latent out),
    # 'reconstruct_sigmoid' (data in, an autoencoder's reconstruction from logits in the data's units out),
    # 'denoise' (a diffusion model's denoiser, as trained), 'node_softmax' / 'node_embedding' (a graph network)
    answers: str
    file: str = "model"  # the run folder's <file>.onnx
    weights: str | None = None  # the checkpoint's weights to serve, when not the network's own (its EMA's)


class Task:
    """Base of every task. Subclasses set `name` and `config` and implement the methods below."""

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

    def __init__(self, options: StrictModel, where: tuple = ("task",)):
        self.options = options
        self.where = where  # where the options are written in the spec: `task` or `task.<name>`

    # ---- check time: plain data, no torch ---------------------------------------------------------

    def check(self, compiled: Any, check_files: bool) -> list[SpecError]:
        """Everything training would refuse, found from the spec, the typed graphs and the data's header."""
        raise NotImplementedError

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        """The names of the values each epoch's row holds (what early stopping and plateau may watch)."""
        raise NotImplementedError

    def served(self, compiled: Any) -> list[Served]:
        raise NotImplementedError

    def monitor(self, has_val: bool) -> str:
        """The logged value that picks the best checkpoint when early stopping names none (lower is better)."""
        return "val_loss" if has_val else "train_loss"

    def higher_is_better(self, logged: str) -> bool:
        """For a value this task logs (val_elbo, train_loss, val_accuracy): is a larger one an improvement? The
        task's own values are minimized unless it names them in `maximized`; the spec's metrics say themselves."""
        from udlc.spec.metrics import METRICS, higher_is_better

        name = re.sub(r"^(train|val|test)_", "", logged)
        if name in self.maximized:
            return True
        if name == "loss" or name.endswith("_loss") or any(entry.logs(name) for entry in METRICS):
            return higher_is_better(logged)
        return False

    def shadows(self, compiled: Any) -> dict[str, str]:
        """Copies of networks that no optimizer trains but that are checkpointed (and may be served) with them,
        e.g. an exponential moving average of a network's weights: each copy's name → the network copied."""
        return {}

    def optimizer_steps(self, network: str, steps: int) -> int:
        """How many times `network`'s optimizer steps in `steps` steps of the run (a schedule spans these)."""
        return steps

    # ---- train time --------------------------------------------------------------------------------

    def load_data(self, compiled: Any) -> Any:
        raise NotImplementedError

    def info(self, compiled: Any, data: Any) -> dict[str, Any]:
        """What run.json records for export and predict (classes, input names and shapes, normalization, ...).
        Called by trainer.run when a run starts, and by doctor."""
        raise NotImplementedError

    def sizes(self, data: Any) -> str:
        """The splits' sizes as the training output's first line shows them: `train/val/test`."""
        raise NotImplementedError

    def batches(self, data: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        """A split's batches (an object with `epoch_batches(generator)`), or None for an empty split. Called by
        the loop for every split, by report for the test split, by doctor and the probes for a few."""
        raise NotImplementedError

    def setup(self, s: Any, data: Any) -> None:
        """Bind what the steps need (loss functions, target scales) once the run state `s` holds the networks and
        optimizers; called by the loop, evaluate and the probes before the first step."""

    def test_outputs(self, s: Any, batch: Any) -> Any:
        """The served network's outputs for a batch of `batches`, for report's per-class tables: the tasks
        that serve classes implement it."""
        raise NotImplementedError

    def chance_loss(self, compiled: Any, data: Any) -> tuple[float, str] | None:
        """What an untrained model should score, and why (doctor's first check): ln C for C classes (uniform
        guesses), ln 2 per binary target, the targets' variance for a squared error (guessing the mean, in the
        targets' units); None where the task's loss has no chance level to name."""
        import math

        import numpy as np

        loss = compiled.spec.loss.type
        info = self.info(compiled, data)
        classes = info.get("classes") or []
        if not self.loss_floor_zero:
            return None  # the spec's loss is one term of the task's (a VAE's reconstruction): no chance level
        if loss == "cross_entropy" and len(classes) > 1:
            return math.log(len(classes)), f"ln {len(classes)} for {len(classes)} classes"
        if info.get("task") not in ("classification", "regression"):
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

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        """One batch: compute the losses, hand each to `s.update(network, loss, batch)`. Returns the values
        to log (averaged over the epoch, weighted by the batch size) and the batch size."""
        raise NotImplementedError

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        """Loss and metrics over a split, in eval mode."""
        raise NotImplementedError

    def quality(self, s: Any, data: Any) -> dict[str, float]:
        """Measures of what a generative model makes, beside the test split's losses (results.json and
        `udlc eval`): none by default."""
        return {}

    def after_epoch(self, s: Any) -> None:
        """Anything to write into the run folder after an epoch's row is logged (s.data is the task's data);
        nothing by default."""

    def after_training(self, s: Any, data: Any) -> None:
        """Anything to write into the run folder once the final weights are loaded (a generative task's
        samples.png); nothing by default."""


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
