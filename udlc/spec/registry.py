"""One small registry class for the names a spec's training sections use: losses, metrics, optimizers, schedules.

Each family keeps an entry per name (its pydantic config, its implementation, its metadata) and builds the
tagged union the spec validates against from the entries, so a name registered once is everywhere: in the
spec models, in the JSON Schema, in the trainer's dispatch and in the registry-wide tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Iterator, TypeVar

from udlc.errors import UdlcError, did_you_mean, one_of
from udlc.spec.base import StrictModel, tagged


@dataclass(frozen=True, kw_only=True)
class Entry:
    """What every family's entry has. `main_arg` is the field a scalar fills (`huber: 2` -> delta=2);
    `examples` are forms a user writes (`cosine`, `{step: {step_size: 2}}`) that the registry-wide tests
    validate, build and run: a new name is tested by registering it."""

    config: type[StrictModel]
    main_arg: str | None = None
    examples: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        return self.config.model_fields["type"].default


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    def __init__(self, kind: str):
        self.kind = kind  # "loss", "metric", …: the word errors use
        self._entries: dict[str, E] = {}

    def register(self, entry: E) -> E:
        name, config = entry.name, entry.config
        if not isinstance(name, str):
            raise ValueError(f"{config.__name__} needs `type: Literal['<name>'] = '<name>'`")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        if entry.main_arg is not None and entry.main_arg not in config.model_fields:
            raise ValueError(f"{name}: main_arg {entry.main_arg!r} is not a field")
        required = [f for f, info in config.model_fields.items() if info.is_required()]
        if required and not entry.examples:
            raise ValueError(f"{name}: its fields {required} are required, so give examples with them for the tests")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> E:
        """The entry for `name`; an unknown name is a UdlcError with a did-you-mean. (A validated spec names
        only registered ones; this guards code that builds configs by hand.)"""
        try:
            return self._entries[name]
        except KeyError:
            hint = did_you_mean(name, self._entries) or one_of(self._entries)
            raise UdlcError(f"unknown {self.kind} {name!r} — {hint}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def examples(self, entry: E) -> tuple[Any, ...]:
        """The entry's examples; the bare name when it gave none (every field has a default then)."""
        return entry.examples or (entry.name,)

    def union(self) -> Any:
        """The tagged union of every registered config, in registration order, with all shorthand forms."""
        main_args = {e.name: e.main_arg for e in self._entries.values() if e.main_arg}
        return tagged(*(e.config for e in self._entries.values()), main_args=main_args)
