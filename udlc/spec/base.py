"""Shared pieces of the spec models: strict mappings and the one-key shorthand users write."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


class StrictModel(BaseModel):
    """A spec mapping: unknown keys are errors (reported with a did-you-mean), values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        # pydantic's own extra="forbid" error does not say which keys *are* allowed; this one does,
        # so the error translator can suggest the closest.
        if isinstance(data, dict):
            allowed = [f.alias or name for name, f in cls.model_fields.items()]
            unknown = [k for k in data if k not in allowed]
            if unknown:
                raise PydanticCustomError(
                    "unknown_keys", "unknown keys {keys}", {"keys": unknown, "allowed": allowed}
                )
        return data


def tagged(*members: type[BaseModel], main_args: dict[str, str] | None = None) -> Any:
    """A union of configs told apart by `type`, written in any of the shorthand forms:

        loss: cross_entropy                          -> {type: cross_entropy}
        loss: {type: cross_entropy, label_smoothing: 0.1}
        augment: [{rotate: 10}, hflip]               -> {type: rotate, degrees: 10}, {type: hflip}
        augment: [{random_crop: {size: 8}}]          -> {type: random_crop, size: 8}
    """
    main_args = main_args or {}
    names = [m.model_fields["type"].default for m in members]

    def expand(value: Any) -> Any:
        if isinstance(value, str):
            return {"type": value}
        if isinstance(value, dict) and "type" not in value and len(value) == 1:
            (name, args), = value.items()
            if isinstance(args, dict):
                return {"type": name, **args}
            if args is None:
                return {"type": name}
            if name in main_args:
                return {"type": name, main_args[name]: args}
            if name in names:
                raise PydanticCustomError(
                    "no_main_arg", "'{name}' takes no single value; write `{name}: {{...}}`", {"name": name}
                )
            return {"type": name}  # unknown name: the union reports it with a did-you-mean
        return value

    union = Annotated[Union[members], Field(discriminator="type")]  # type: ignore[valid-type]
    # What users may write, for the JSON Schema: a bare name, a one-key mapping, or the full mapping.
    short_forms: list[Any] = [Annotated[str, Field(json_schema_extra={"enum": names})]]
    for member in members:
        name = member.model_fields["type"].default
        arg_model = _without_type(member)
        forms: list[Any] = [arg_model, type(None)]
        if name in main_args:
            forms.append(member.model_fields[main_args[name]].annotation)
        short_forms.append(_one_key(name, Union[tuple(forms)]))  # type: ignore[misc]
    return Annotated[union, BeforeValidator(expand, json_schema_input_type=Union[tuple(short_forms) + (union,)])]


_cache: dict[Any, Any] = {}


def _without_type(member: type[BaseModel]) -> Any:
    """The member's fields minus `type`, for the `{name: {...}}` form in the schema."""
    from pydantic import create_model

    key = ("args", member)
    if key not in _cache:
        fields = {n: (f.annotation, f) for n, f in member.model_fields.items() if n != "type"}
        _cache[key] = create_model(
            f"{member.__name__}Args", __config__=ConfigDict(extra="forbid", defer_build=True), **fields  # type: ignore[call-overload]
        )
    return _cache[key]


def _one_key(name: str, value_type: Any) -> Any:
    from pydantic import create_model

    key = ("one", name, value_type)
    if key not in _cache:
        cls_name = "".join(p.title() for p in name.split("_")) + "Short"
        _cache[key] = create_model(
            cls_name, __config__=ConfigDict(extra="forbid", defer_build=True), **{name: (value_type, ...)}  # type: ignore[call-overload]
        )
    return _cache[key]
