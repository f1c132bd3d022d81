"""The whole spec: one pydantic model per top-level section."""

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, WithJsonSchema, field_validator, model_validator

from udlc.spec.base import StrictModel
from udlc.spec.data import DataSpec
from udlc.spec.model import ModelSpec, Name, TreeModelSpec, model_kind
from udlc.spec.registry import Section
from udlc.spec.training import Adam, Constant, ExportSpec, Loss, Metric, Optimizer, Schedule, TrainSpec

SPEC_VERSION = 1
# The task's name or `{type: name, ...options}`: tasks are registered above the spec (udlc.tasks), so their
# options are validated by the task check; the JSON Schema still describes them (udlc.compiler.schema).
TaskEntry = Annotated[Any, WithJsonSchema({"x-udlc": "Task"})]
# Sections few specs write: their models are imported and built only when a spec has them (see Section).
InitSection = Annotated[Any, Section("udlc.spec.init", "InitSpec")]  # InitSpec | None
LoraSection = Annotated[Any, Section("udlc.spec.finetune", "LoraSpec")]  # LoraSpec | None
TuneSection = Annotated[Any, Section("udlc.spec.tuning", "TuneSpec")]  # TuneSpec | None


class Spec(StrictModel):
    udlc: Literal[1] = Field(description="spec language version")
    extends: str | None = Field(None, description="a spec file this one builds on (relative to it): its sections "
                                                  "with this file's merged over them, mappings key by key")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100, description="names the run folder")
    seed: int = Field(0, ge=0, lt=2**32)
    task: TaskEntry = Field("supervised", description="what training does; default: supervised")
    data: DataSpec
    model: Annotated[Annotated[ModelSpec, Tag("network")] | Annotated[TreeModelSpec, Tag("trees")],
                     Discriminator(model_kind)] | None = Field(
        None, description="the network, when the task trains one; or `{gradient_boosting: {...}}`, boosted trees "
                          "on rows of features (task supervised)")
    models: dict[Name, ModelSpec] | None = Field(None, min_length=1, description="several named networks")
    init: InitSection = Field(None, description="the weights the networks start from (a file, a Hugging Face "
                                                   "folder or a udlc run) and the mapping of their names")
    loss: Loss | None = Field(None, description="what the network learns to minimize, for the tasks that "  # type: ignore[valid-type]
                                "take one (a GAN's and a diffusion model's losses are task options)")
    metrics: list[Metric] = Field(default_factory=list)  # type: ignore[valid-type]
    optimizer: Optimizer = Field(default_factory=Adam)  # type: ignore[valid-type]
    schedule: Schedule = Field(default_factory=Constant)  # type: ignore[valid-type]
    optimizers: dict[Name, Optimizer] | None = Field(  # type: ignore[valid-type]
        None, description="per network, instead of `optimizer`")
    schedules: dict[Name, Schedule] | None = Field(  # type: ignore[valid-type]
        None, description="per network; a network without one follows `schedule`")
    train: TrainSpec = Field(default_factory=TrainSpec)
    lora: LoraSection = Field(None, description="low-rank adapters: the base network frozen, only the adapters "
                                                    "trained, merged into the exported file")
    export: ExportSpec = Field(default_factory=ExportSpec)
    tune: TuneSection = Field(None, description="what `udlc tune` searches over; `udlc train` ignores it")

    @field_validator("model")
    @classmethod
    def _trees_are_supervised(cls, v: Any, info: Any) -> Any:
        # Here, not in each task's check: every other task's check expects networks to check.
        task = _task_name(info.data.get("task", "supervised"))  # declared above `model`, so validated already
        if isinstance(v, TreeModelSpec) and isinstance(task, str) and task != "supervised":
            raise ValueError(f"gradient_boosting learns targets from rows of features (task supervised); task {task} "
                             "trains networks — drop `task`, or give the network's `layers`")
        return v

    @model_validator(mode="after")
    def _one_kind_of_model(self) -> "Spec":
        if (self.model is None) == (self.models is None):
            raise ValueError("give either `model: {...}` (one network) or `models: {name: {...}, ...}`")
        return self

    @property
    def init_seed(self) -> int:
        """The seed of a run's initialization, batch order, dropout and augmentation: train.seed, else `seed`
        (which alone draws a generated set and the split, so `--seeds` varies the training, not the data)."""
        return self.train.seed if self.train.seed is not None else self.seed

    @property
    def networks(self) -> dict[str, ModelSpec]:
        """Every network by name; `model:` is the network named 'model' (none when it is a tree ensemble)."""
        if isinstance(self.model, TreeModelSpec):
            return {}
        return self.models if self.models is not None else {"model": self.model}  # type: ignore[dict-item]

    def optimizer_of(self, network: str) -> Any:
        return (self.optimizers or {}).get(network, self.optimizer)

    def schedule_of(self, network: str) -> Any:
        return (self.schedules or {}).get(network, self.schedule)


def _task_name(task: Any) -> Any:
    """The name `task:` gives (`name`, `{type: name, ...}`, `{name: {...}}`); anything else as it is, for the task
    check to report."""
    if isinstance(task, dict):
        return task.get("type", next(iter(task)) if len(task) == 1 else None)
    return task
