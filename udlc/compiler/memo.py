"""Layer configs and their inferred types, kept by what they were made from: a network repeats the same layer
with the same arguments many times (an EfficientNet's blocks, a transformer's layers), and validating the
arguments and running the shape rules again for each copy was most of checking a large spec.

Both are pure: a config is frozen and depends only on its arguments; a node's types depend only on its layer
type, config and input types. Only successes are kept; an error is reported at its own line every time.
"""

from __future__ import annotations

from typing import Any, Callable

LIMIT = 20_000  # entries per table; a long-running process (tune, the API) starts a table afresh past it

_configs: dict[tuple, Any] = {}
_types: dict[tuple, tuple[Any, tuple]] = {}


def key_of(value: Any) -> Any:
    """A hashable stand-in for YAML data that tells apart what validation tells apart (`true` from `1`)."""
    if isinstance(value, dict):
        return ("{", *((k, key_of(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("[", *(key_of(v) for v in value))
    return type(value), value


def config(cls: type, args: dict, validate: Callable[[], Any]) -> Any:
    """The config `validate()` makes of `args` for `cls`: the same instance for the same arguments."""
    key = (cls, key_of(args))
    found = _configs.get(key)
    if found is None:
        found = validate()  # raises for invalid arguments: nothing is kept
        if len(_configs) >= LIMIT:
            _configs.clear()
        _configs[key] = found
    return found


def types(op: str, cfg: Any, shapes: list, dtypes: list, infer: Callable[[], tuple]) -> tuple:
    """What `infer()` gives a node of type `op` with this config and input types, as fresh lists."""
    key = (op, id(cfg), tuple(shapes), tuple(dtypes))
    found = _types.get(key)
    if found is None or found[0] is not cfg:  # the config is kept beside it, so its id names it alone
        if len(_types) >= LIMIT:
            _types.clear()
        found = _types[key] = (cfg, infer())
    shapes_out, dtypes_out, params, flops = found[1]
    return list(shapes_out), list(dtypes_out), params, flops
