"""Training on several processes with PyTorch's own engine: torchrun starts the processes (`udlc train --devices N`
starts torchrun), each runs the same loop on its share of every batch, and DistributedDataParallel averages their
gradients (gloo on CPU, nccl on GPU); with `train.strategy: fsdp`, FSDP2 shards the model between them (below).

`train.batch_size` is the global batch: every process draws the same seeded order of the epoch, cuts the same
global batches from it and takes its own contiguous slice of each, and its loss is weighted by the slice's share,
so the averaged gradient is the global batch's mean gradient and a spec trains the same on any number of
processes (batch norm excepted: it normalizes each process's slice). Each process has its own random stream
for dropout and augmentation. The epoch's logged values are summed over the processes. Validation is shared
too where the task joins the shares: a supervised task gathers the outputs (its metrics, F1 and the like, need
all of them), a language model sums its losses; other tasks validate the whole split in every process (the same
weights, the same answers). The main
process's row decides best checkpoint and early stopping for all. Only the main process (rank 0) writes the run
folder, logs and exports.

`destroy_process_group()` is not called at exit: with gloo it aborts about one run in 14. Even without it, the
interpreter's teardown sometimes aborts beside gloo's threads, so a process of a run on several ends with
os._exit once its work is done (`leave`)."""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, NoReturn


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch, or a process on its own. torch-free: the CLI asks before it exports."""
    return os.environ.get("RANK", "0") == "0"


def launched_processes() -> int:
    """How many processes torchrun started for this run (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def leave(code: int) -> NoReturn:
    """End a process of a run on several now, output flushed, without the interpreter's teardown: gloo's threads
    can abort the process as it tears down (SIGABRT, "terminate called without an active exception"), which the
    launcher would take for a failure. A process on its own exits as usual."""
    if launched_processes() > 1:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


@dataclass
class Processes:
    """This process's place among a run's processes."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, value: Any) -> Any:
        """The main process's `value` (any JSON-like object), in every process."""
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value`, in rank order, in every process."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def concat(self, tensors: list[Any]) -> list[Any]:
        """Each of `tensors` (rows of this process's share) joined with the other processes' in rank order."""
        import torch

        everyone = self.gather([t.cpu() for t in tensors])
        return [torch.cat([mine[i] for mine in everyone]).to(t.device) for i, t in enumerate(tensors)]

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the processes (float64, so sums of many batches keep their digits)."""
        import torch
        import torch.distributed as dist

        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()


def start(device_choice: str) -> Processes | None:
    """Join the process group torchrun set up (None for a run on one process)."""
    world = launched_processes()
    if world <= 1:
        return None
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_choice != "cpu" and torch.cuda.is_available()
    if cuda and local_rank >= torch.cuda.device_count():
        from udlc.errors import UdlcError

        raise UdlcError(f"process {local_rank} has no GPU of its own: this machine has {torch.cuda.device_count()} "
                        "— start as many processes as GPUs (--devices, --nproc-per-node), or train on the CPU "
                        "(train.device: cpu)")
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), local_rank)


class Shard:
    """A process's share of a split's batches: the global batches of an epoch in the order every process draws
    from its own copy of `order` (a generator seeded alike everywhere), and of each this process's contiguous
    share (udlc.data.batches.process_share). `weight` is the last share's part of its global batch × the number
    of processes: a share's mean loss times it, averaged over the processes, is the global batch's mean loss. A
    share of no rows is one row of weight 0, as DDP needs every process to take part in each step. Batches that
    can (in memory, streamed) select or read only the share's rows; others are cut after."""

    def __init__(self, batches: Any, processes: Processes, order: Any):
        self.batches, self.processes, self.order = batches, processes, order
        self.weight = 1.0

    def __len__(self) -> int:
        return len(self.batches)

    def __getattr__(self, name: str) -> Any:
        """What the split's own batches say about themselves (its name, its sizes)."""
        if name == "batches":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.batches, name)

    def epoch_batches(self, generator: Any = None) -> Iterator[dict[str, Any]]:
        """`generator` (the process's own) is not used: the order must be the same in every process."""
        from udlc.data.batches import process_share

        rank, world = self.processes.rank, self.processes.world
        shares = getattr(self.batches, "epoch_shares", None)
        if shares is None:  # e.g. a text's windows: the whole batch, then the share
            shares = (_cut(batch, rank, world, process_share) for batch in self.batches.epoch_batches(self.order))
        else:
            shares = shares(self.order, rank, world)
        for whole, counted, batch in shares:
            self.weight = counted * world / whole
            yield batch


def _cut(batch: dict[str, Any], rank: int, world: int, process_share: Any) -> tuple[int, int, dict[str, Any]]:
    n = len(next(iter(batch.values())))
    start, stop, counted = process_share(n, rank, world)
    return n, counted, {key: value[start:stop] for key, value in batch.items()}


def wrap(model: Any, device: Any) -> Any:
    """`model` under DistributedDataParallel, which averages its gradients over the processes in backward."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# ---- FSDP (train.strategy: fsdp) -------------------------------------------------------------------------------
# Each layer with trainable parameters is its own FSDP2 unit (fully_shard, in place), then the whole network:
# a process holds 1/N of every parameter, gradient and optimizer state, and gathers a layer's parameters just for
# its forward and backward. Gradients are averaged over the processes, as DDP's. Checkpoints gather the full
# state (torch.distributed.checkpoint.state_dict) into the main process, which writes udlc's usual safetensors
# checkpoint, so a sharded run resumes on any number of processes, or on one, and exports as any other; set back,
# the full state is sharded anew. (DCP's own file format keeps its metadata as a pickle, which udlc's checkpoints
# never hold.)


def shard(model: Any, device: Any, processes: Processes) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (processes.world,))
    for layer in model.children():  # a lowered network: a child module per layer
        if any(p.requires_grad for p in layer.parameters()):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def sharded(model: Any) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _full() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)  # the whole tensors, in the main process


def model_state(model: Any) -> dict[str, Any]:
    """The network's whole state dict (sharded: gathered, every process taking part, the main one keeping it)."""
    if not sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full())


def optimizer_state(model: Any, optimizer: Any) -> dict[str, Any]:
    """The optimizer's state dict in torch.optim's own form (parameters by index), gathered when sharded."""
    if not sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    named = get_optimizer_state_dict(model, optimizer, options=_full())
    if not named:  # not the main process
        return {}
    index = {name: i for i, name in enumerate(_names(model, optimizer))}
    return {"state": {index[name]: value for name, value in named["state"].items()},
            "param_groups": [{**group, "params": [index[name] for name in group["params"]]}
                             for group in named["param_groups"]]}


def load_state(model: Any, optimizer: Any | None, model_dict: dict[str, Any], optimizer_dict: dict | None) -> None:
    """A whole saved state set into the network and its optimizer (sharded anew across the processes)."""
    if not sharded(model):
        model.load_state_dict(model_dict)
        if optimizer is not None:
            optimizer.load_state_dict(optimizer_dict)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, \
        set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_dict, options=options)
    if optimizer is not None:
        names = _names(model, optimizer)
        named = {"state": {names[int(i)]: value for i, value in optimizer_dict["state"].items()},
                 "param_groups": [{**group, "params": [names[int(i)] for i in group["params"]]}
                                  for group in optimizer_dict["param_groups"]]}
        set_optimizer_state_dict(model, optimizer, named, options=options)


def _names(model: Any, optimizer: Any) -> list[str]:
    """Each parameter's name in the order torch.optim numbers them (group after group)."""
    name_of = {id(p): name for name, p in model.named_parameters()}
    return [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]


@contextmanager
def accumulating(models: Any) -> Iterator[None]:
    """Within it, backward keeps each process's gradients to itself: the batches of an accumulation group before
    its last (DDP's no_sync, FSDP2's set_requires_gradient_sync(False)). Averaging is linear, so one exchange at
    the group's last batch gives the same gradient as one after every batch."""
    from torch.nn.parallel import DistributedDataParallel

    with ExitStack() as stack:
        for model in models:
            model = getattr(model, "_orig_mod", model)
            if isinstance(model, DistributedDataParallel):
                stack.enter_context(model.no_sync())
            elif sharded(model):
                model.set_requires_gradient_sync(False)
                stack.callback(model.set_requires_gradient_sync, True)
        yield


def unwrap(model: Any) -> Any:
    """The plain module inside torch.compile's and DDP's wrappers: checkpoints hold its names."""
    from torch.nn.parallel import DistributedDataParallel

    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, DistributedDataParallel) else model
