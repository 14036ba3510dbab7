"""``@frozen``: an immutable, slotted dataclass whose construction is cheap.

Messages, handshake states and results are frozen dataclasses (STYLE.md §5). The standard
``@dataclass(frozen=True)`` sets each field in ``__init__`` through ``object.__setattr__``,
which costs about 0.4 us a field: a DTLS handshake builds some sixty of these objects, so
that detour alone was close to a tenth of a server's handshake time. ``@frozen`` makes the
same class (``dataclass(frozen=True, slots=True)``: same fields, defaults, equality,
hashing, ``repr``, ``dataclasses.replace``, and assignment still raises
``FrozenInstanceError``) and then gives it an ``__init__`` that stores each field through
its slot descriptor directly, five times cheaper. Defaults, default factories, keyword-only
fields and ``__post_init__`` behave as with ``dataclass``; an ``init=False`` field needs a
default factory (a fresh value per object, for ``__post_init__`` to fill).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")
_NO_VALUE = object()  # stands for "use the default factory" in a generated signature


@dataclass_transform(frozen_default=True)
def frozen(cls: type[_T]) -> type[_T]:
    """``@dataclass(frozen=True, slots=True)`` with a fast ``__init__`` (module docstring)."""
    made = dataclasses.dataclass(frozen=True, slots=True)(cls)
    made.__init__ = _slot_init(made)  # type: ignore[method-assign]
    return made


def _slot_init(cls: type) -> Any:
    namespace: dict[str, Any] = {"_NO_VALUE": _NO_VALUE}
    positional: list[str] = []
    keyword_only: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):
        name = f.name
        # The slot's member descriptor: the class's own, or a frozen base's for a field
        # it inherits (each slot lives in the class that declared it).
        owner = next(c for c in cls.__mro__ if name in vars(c))
        namespace[f"_set_{name}"] = vars(owner)[name].__set__
        if not f.init:
            # Not an argument: made fresh for each object (for ``__post_init__`` to fill).
            if f.default_factory is dataclasses.MISSING:
                raise TypeError(f"@frozen: init=False field {name} needs a default_factory")
            namespace[f"_factory_{name}"] = f.default_factory
            body.append(f"    _set_{name}(self, _factory_{name}())")
            continue
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = f.default
            parameter, value = f"{name}=_default_{name}", name
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            parameter = f"{name}=_NO_VALUE"
            value = f"_factory_{name}() if {name} is _NO_VALUE else {name}"
        else:
            parameter, value = name, name
        (keyword_only if f.kw_only else positional).append(parameter)
        body.append(f"    _set_{name}(self, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    parameters = ["self", *positional, *(["*", *keyword_only] if keyword_only else [])]
    source = f"def __init__({', '.join(parameters)}):\n" + ("\n".join(body) or "    pass")
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init
