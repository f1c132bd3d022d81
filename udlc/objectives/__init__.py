"""The implementations of what a spec's training sections name: losses, metrics, optimizers, schedules and
augmentations. Each name's config, and the facts `udlc check` needs, are its entry in udlc.spec (configs only);
here each name has its implementation, in one table per family keyed by the same names. torch is imported only
inside the implementations, so importing these modules stays cheap.

Every table is held to its registry when its module is imported (`implements`), so a name registered without an
implementation, or an implementation of a name nobody registered, fails every test run at once.
"""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def implements(registry: Any, table: Mapping[str, T]) -> Mapping[str, T]:
    """`table` (name -> implementation), checked to hold exactly the names `registry` has."""
    names = set(registry.names())
    missing, unknown = sorted(names - set(table)), sorted(set(table) - names)
    if missing or unknown:
        raise AssertionError(f"{registry.kind} implementations do not match the registry: "
                             f"{f'none for {missing}' if missing else ''}"
                             f"{'; ' if missing and unknown else ''}"
                             f"{f'{unknown} not registered' if unknown else ''}")
    return table
