"""Shared pieces of the spec models: strict mappings and the one-key shorthand users write."""

from typing import Annotated, Any, Callable, Iterable, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError


class YamlBool:
    """A YAML boolean given where a number is expected. pydantic would read `epochs: true` as 1;
    swapping the bool for this makes it fail as the type error it is."""

    def __init__(self, value: bool):
        self.value = value


FLOAT32_MAX = 3.4028234663852886e38


class StrictModel(BaseModel):
    """A spec mapping: unknown keys are errors (reported with a did-you-mean), numbers are finite and
    never booleans, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # pydantic's own extra="forbid" error does not say which keys *are* allowed; this one does,
        # so the error translator can suggest the closest.
        fields = cls.model_fields
        allowed = [f.alias or name for name, f in fields.items()]
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise PydanticCustomError("unknown_keys", "unknown keys {keys}", {"keys": unknown, "allowed": allowed})
        return {k: YamlBool(v) if isinstance(v, bool) and not _takes_bool(fields[k].annotation) else v
                for k, v in data.items()}

    @field_validator("*", mode="after")
    @classmethod
    def _fits_float32(cls, value: Any) -> Any:
        # Finite is not enough: tensors and optimizers hold float32, where `lr: 1e300` overflows mid-run.
        if any(isinstance(v, float) and abs(v) > FLOAT32_MAX for v in (value if isinstance(value, (list, tuple))
                                                                        else (value,))):
            raise PydanticCustomError("float32_overflow", "must fit a float32, at most 3.4e38 (got {got})",
                                      {"got": value})
        return value


def _takes_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(a, bool) for a in get_args(annotation))
    if get_origin(annotation) in (Union, Annotated) or type(annotation).__name__ == "UnionType":
        return any(_takes_bool(a) for a in get_args(annotation))
    return False


def tagged(*members: type[BaseModel], main_args: dict[str, str] | None = None) -> Any:
    """A pydantic union of configs told apart by `type`, written in any of the shorthand forms (see `short_forms`).
    Building it builds every member: the spec's fields use udlc.spec.registry's `ByType` instead, which builds only
    the configs a spec names, and this union for their JSON Schema."""
    main_args = main_args or {}
    names = [m.model_fields["type"].default for m in members]
    union = Annotated[Union[members], Field(discriminator="type")]  # type: ignore[valid-type]
    return Annotated[union, BeforeValidator(short_forms(members, main_args)), _ShortForms(names, main_args)]


def tagged_json_schema(members: Iterable[type[BaseModel]], main_args: dict[str, str], handler: Any) -> dict[str, Any]:
    """The JSON Schema of `tagged(*members)`, shorthand forms included, from inside another type's JSON Schema
    hook (`handler` is pydantic's GetJsonSchemaHandler there)."""
    from pydantic import TypeAdapter

    members = list(members)
    union = Annotated[Union[tuple(members)], Field(discriminator="type")]  # type: ignore[valid-type]
    names = [m.model_fields["type"].default for m in members]
    return _ShortForms(names, main_args).__get_pydantic_json_schema__(TypeAdapter(union).core_schema, handler)


def short_forms(members: Iterable[type[BaseModel]], main_args: dict[str, str]) -> Callable[[Any], Any]:
    """What turns the shorthand forms of a config told apart by `type` into its mapping:

        loss: cross_entropy                          -> {type: cross_entropy}
        loss: {type: cross_entropy, label_smoothing: 0.1}
        augment: [{rotate: 10}, hflip]               -> {type: rotate, degrees: 10}, {type: hflip}
        augment: [{random_crop: {size: 8}}]          -> {type: random_crop, size: 8}
    """
    members = list(members)
    names = [m.model_fields["type"].default for m in members]
    fields = {f for m in members for f in m.model_fields if f != "type"}

    def expand(value: Any) -> Any:
        if isinstance(value, str):
            return {"type": value}
        key = next(iter(value)) if isinstance(value, dict) and len(value) == 1 else None
        # {brightness: 0.2} names the augmentation, even where another's field is called brightness too
        if isinstance(value, dict) and "type" not in value and (key is None or (key in fields and key not in names)):
            raise PydanticCustomError("missing_type", "needs a `type`", {"names": names})
        if isinstance(value, dict) and "type" not in value:
            (name, args), = value.items()
            if isinstance(args, dict):
                return {"type": name, **args}
            if args is None:
                return {"type": name}
            if name in main_args:
                return {"type": name, main_args[name]: args}
            if name in names:
                raise PydanticCustomError(
                    "no_main_arg", "'{name}' takes no single value; give its arguments as a mapping", {"name": name}
                )
            return {"type": name}  # unknown name: the union reports it with a did-you-mean
        return value

    return expand


class _ShortForms:
    """Adds the shorthand forms to a tagged union's JSON Schema. It runs only when a schema is generated,
    so validation (and `udlc check`'s start-up) pays nothing for it."""

    def __init__(self, names: list[str], main_args: dict[str, str]):
        self.names, self.main_args = names, main_args

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        full = handler(core_schema)
        forms: list[dict[str, Any]] = [{"enum": self.names}]
        for ref in full.get("oneOf", []):
            member = handler.resolve_ref_schema(ref)
            name = member["properties"]["type"]["const"]
            props = {k: v for k, v in member["properties"].items() if k != "type"}
            args: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
            required = [r for r in member.get("required", []) if r != "type"]
            if required:
                args["required"] = required
            value: list[dict[str, Any]] = [args, {"type": "null"}]
            if name in self.main_args:
                value.insert(0, props[self.main_args[name]])
            forms.append({"type": "object", "properties": {name: {"anyOf": value}}, "required": [name],
                          "additionalProperties": False})
        return {"anyOf": forms + [full]}
