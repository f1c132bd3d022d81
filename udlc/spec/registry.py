"""One small registry class for the names a spec's training sections use: losses, metrics, optimizers, schedules,
augmentations.

Each family keeps an entry per name (its pydantic config and the facts `udlc check` needs; the implementation is
in udlc.objectives, under the same name) and gives the type the spec validates against (`union()`), so a name
registered once is everywhere: in the spec models, in the JSON Schema, in the trainer's dispatch and in the
registry-wide tests.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Iterator, TypeVar

from pydantic_core import PydanticKnownError, SchemaValidator, core_schema

from udlc.errors import UdlcError, did_you_mean, one_of
from udlc.spec.base import StrictModel, short_forms, tagged, tagged_json_schema


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

    def main_args(self) -> dict[str, str]:
        return {e.name: e.main_arg for e in self._entries.values() if e.main_arg}

    def union(self) -> Any:
        """The type of a spec field that names one of this family, in any shorthand form (`loss: cross_entropy`,
        `{huber: 2}`, `{type: huber, delta: 2}`): see ByType."""
        return Annotated[Any, ByType(self)]

    def tagged(self) -> Any:
        """The pydantic tagged union of every registered config, in registration order, with all shorthand forms:
        what ByType validates like, and its JSON Schema. Building it builds every config."""
        return tagged(*(e.config for e in self._entries.values()), main_args=self.main_args())


class ByType:
    """Validates a value by looking its `type` up in the registry and validating that config alone.

    A pydantic union over every config would build every config of every family when the spec's model is first
    used, most of `udlc check`'s time; this builds only the configs a spec names, on first use. It answers as
    pydantic's tagged union does (the same error types, a member's errors located under its tag, the shorthand
    forms), so the error translator and every message stay as they were; its JSON Schema is that union's.
    """

    def __init__(self, registry: Registry):
        self.registry = registry
        self._expand: tuple[int, Any] = (-1, None)  # (entries then, the shorthand reader over them)
        self._validators: dict[str, SchemaValidator] = {}

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> Any:
        return tagged_json_schema(self.registry_configs(), self.registry.main_args(), handler)

    def registry_configs(self) -> list[type[StrictModel]]:
        return [e.config for e in self.registry]

    def validate(self, value: Any) -> Any:
        if self._expand[0] != len(self.registry):  # made on first use, when every entry is registered
            self._expand = (len(self.registry), short_forms(self.registry_configs(), self.registry.main_args()))
        value = self._expand[1](value)
        if not isinstance(value, dict):
            raise PydanticKnownError("model_attributes_type")
        tag = value.get("type")
        if not isinstance(tag, str) or tag not in self.registry:
            expected = ", ".join(f"'{name}'" for name in self.registry.names())
            raise PydanticKnownError("union_tag_invalid",
                                     {"discriminator": "'type'", "tag": str(tag), "expected_tags": expected})
        return self._validator(tag).validate_python(value)

    def _validator(self, tag: str) -> SchemaValidator:
        """A tagged union of the one config: it puts the tag in an error's location, as the union of all does."""
        if tag not in self._validators:
            config = self.registry[tag].config
            config.model_rebuild()  # configs defer their build to first use: this is it
            schema = config.__pydantic_core_schema__
            if schema["type"] == "definitions":  # a config with nested models keeps their definitions outside
                union = core_schema.tagged_union_schema({tag: schema["schema"]}, discriminator="type")
                schema = core_schema.definitions_schema(union, schema["definitions"])
            else:
                schema = core_schema.tagged_union_schema({tag: schema}, discriminator="type")
            self._validators[tag] = SchemaValidator(schema)
        return self._validators[tag]


class Section:
    """A spec section validated by its own model, which is imported and built only when a spec writes the section.

    `tune:`, `lora:` and `init:` are rare, and building them for every spec was part of `udlc check`'s start-up; a
    field annotated `Annotated[Any, Section("udlc.spec.tuning", "TuneSpec")]` validates as `TuneSpec | None` did
    (the same errors, located under the section), and its JSON Schema is the model's."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    @property
    def model(self) -> type[StrictModel]:
        return getattr(importlib.import_module(self.module), self.name)

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> Any:
        from pydantic import TypeAdapter

        return handler(TypeAdapter(self.model | None).core_schema)

    def validate(self, value: Any) -> Any:
        # A written `null` is the section left out, as `Model | None` read it (a default is not validated).
        return None if value is None else self.model.model_validate(value)
