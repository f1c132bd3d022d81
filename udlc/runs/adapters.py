"""An adapted (LoRA) run's networks rebuilt from its checkpoint, which holds the adapters only: the base as the run
started it (the seed's fresh initialization, then the weights it was initialized from, their hash checked), the
adapters over it. What a resume loads before the adapters, and what export merges into one plain network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from udlc.errors import UdlcError
from udlc.runs import checkpoint


def load_base(models: dict[str, Any], compiled: Any, info: dict[str, Any]) -> str | None:
    """The base weights of an adapted run into `models` (built from the seed, adapters on), from where run.json
    says the run started (`init_from`, an absolute path: a run folder's final checkpoint or a file, through the
    spec's `init.map` where it has one). Returns the log's note; None for a base that is the seed's own
    initialization. A source whose hash differs from the one recorded is refused: the adapters were trained on
    other weights."""
    from udlc.runs.folder import RunFolder
    from udlc.weights import load_init, load_into, open_source

    if not info.get("init_from"):
        return None
    path = Path(info["init_from"])
    if (path / "run.json").is_file():  # a run's final weights, as the run started from them
        run = RunFolder.open(path)
        source = open_source(path, run.final_checkpoint(run.compiled().spec).with_suffix(".safetensors"))
    else:
        source = open_source(path)
    init = getattr(compiled.spec, "init", None)
    if init is not None and init.map is not None and source.kind != "run":
        report = load_init(models, init.model_copy(update={"from_": str(path)}), compiled.base_dir,
                           checkpoint=None)
    else:
        report = load_into(models, source)
    recorded = info.get("init_sha256")
    if recorded and report.sha256 != recorded:
        raise UdlcError(f"{source.path} is not the weights this run's adapters were trained on (its sha256 differs "
                        f"from run.json's init_sha256 {recorded[:12]}…) — put the original back")
    return "base " + report.text


def adapted_network(compiled: Any, info: dict[str, Any], network: str, weights: str, ckpt: Path) -> Any:
    """The served network of an adapted run with its adapters merged into its weights (a plain network whose
    every linear layer is W + (alpha / rank) B A): built from the seed as training built it, the base loaded,
    the checkpoint's `weights` entry (the adapters, a norm's statistics) over it."""
    from udlc.compiler.lower import lower
    from udlc.layers.modules.lora import merge
    from udlc.objectives.finetune import put_adapters

    seed = compiled.spec.init_seed + list(compiled.graphs).index(network)
    graph = compiled.graphs[network]
    model = lower(graph, seed=seed)
    put_adapters(model, compiled.spec, graph, seed)
    load_base({network: model}, compiled, info)
    state = checkpoint.load(ckpt)
    if "base" not in state:
        raise UdlcError(f"{ckpt} holds whole networks, not adapters: the run was trained without `lora`")
    model.load_state_dict({**model.state_dict(), **state["models"][weights]})
    return merge(model).eval()
