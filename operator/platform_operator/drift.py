"""Does a live object still hold what we would apply? Pure comparison, no I/O.

The operator applies a child only when this says it drifted, so a resync that finds everything in
place sends no write to the API server. The live object carries more than we set (defaults, status,
fields of other managers): only the fields we set are compared, recursively.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([a-zA-Z]{0,2})$")


def parse_quantity(value: object) -> Decimal | None:
    """A Kubernetes quantity as a number (the API server rewrites 0.5 as 500m), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match or match.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        return None


# Fields whose values are Kubernetes quantities, which the API server may rewrite in another form.
# Anywhere else "3.10" and "3.1" are different values (an env value, an argument).
QUANTITY_FIELDS = frozenset({"resources", "sizeLimit"})


def _scalar_equal(want: object, have: object, quantity: bool) -> bool:
    if want == have:
        return True
    if quantity and isinstance(want, str | int) and isinstance(have, str | int):
        a, b = parse_quantity(want), parse_quantity(have)
        return a is not None and a == b
    return False


def holds(want: Any, have: Any, *, quantity: bool = False) -> bool:
    """True when every field of `want` is present with the same value in `have`."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        return all(k in have and holds(v, have[k], quantity=quantity or k in QUANTITY_FIELDS) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        return all(holds(w, h, quantity=quantity) for w, h in zip(want, have, strict=True))
    return _scalar_equal(want, have, quantity)


def drifted_paths(want: Any, have: Any, path: str = "", *, quantity: bool = False) -> list[str]:
    """The paths where `have` differs from `want`; for Events that say what was repaired."""
    if isinstance(want, dict) and isinstance(have, dict):
        out: list[str] = []
        for k, v in want.items():
            sub = f"{path}.{k}" if path else k
            inner = quantity or k in QUANTITY_FIELDS
            out.extend([sub] if k not in have else drifted_paths(v, have[k], sub, quantity=inner))
        return out
    return [] if holds(want, have, quantity=quantity) else [path or "."]
