"""Imports kubernetes-asyncio's generated client on demand, not all at once.

`kubernetes_asyncio.client` imports every API class and all ~770 models when anything in it is
imported (its package `__init__` is a list of `from ... import ...` lines), and so does the
top-level package. kopf imports `V1ObjectMeta` from it to recognise the client's models, and
the operator uses `ApiClient`, `Configuration` and the kubeconfig loader: a handful of modules,
for which the whole client costs about 45 MB of every operator process (measured: 121 MB after
importing the handlers, 75 MB with this). `defer()` puts in place of those four packages modules
that hold the same names and import each one's module the first time it is used; everything else
(the classes, the loaders, `isinstance` checks) is the library's own.

It only replaces a package whose `__init__` consists of the statements above (imports of the
library's own modules, literal assignments, a docstring); any other shape, in a later version of
the library, leaves that package to import as it always does. Call it before anything imports
kopf or the client (the operator's entry point does); a package already imported is left alone.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

LIBRARY = "kubernetes_asyncio"
PACKAGES = (LIBRARY, f"{LIBRARY}.client", f"{LIBRARY}.client.api", f"{LIBRARY}.client.models")


def _exports(source: str) -> tuple[dict[str, tuple[str, str | None]], dict[str, Any]] | None:
    """name -> (module, attribute or None for the module itself), and the literal assignments;
    None when the package does anything else on import."""
    names: dict[str, tuple[str, str | None]] = {}
    literals: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(LIBRARY):
            for alias in node.names:
                names[alias.asname or alias.name] = (str(node.module), alias.name)
            continue
        if isinstance(node, ast.Import) and all(a.name.startswith(LIBRARY) and a.asname for a in node.names):
            for alias in node.names:
                names[str(alias.asname)] = (alias.name, None)
            continue
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            for target in node.targets:
                literals[target.id] = value  # type: ignore[attr-defined]
            continue
        return None
    return names, literals


def _find(name: str) -> importlib.machinery.ModuleSpec | None:
    if "." not in name:
        return importlib.util.find_spec(name)
    parent = sys.modules.get(name.rsplit(".", 1)[0])
    return importlib.machinery.PathFinder.find_spec(name, getattr(parent, "__path__", None))


def _on_demand(name: str) -> bool:
    spec = _find(name)
    if spec is None or spec.origin is None or not spec.submodule_search_locations:
        return False
    exports = _exports(Path(spec.origin).read_text(encoding="utf-8"))
    if exports is None:
        return False
    names, literals = exports
    module = types.ModuleType(name)
    module.__dict__.update(literals)
    module.__spec__ = spec
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations)
    module.__package__ = name

    def __getattr__(attribute: str) -> Any:
        if attribute not in names:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
        where, what = names[attribute]
        found = importlib.import_module(where)
        value = found if what is None else getattr(found, what)
        setattr(module, attribute, value)  # the next use is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*module.__dict__, *names})

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dir__ = __dir__  # type: ignore[method-assign]
    sys.modules[name] = module
    return True


def defer() -> list[str]:
    """Puts the on-demand packages in place; returns the ones it replaced (outer first: a package
    left as it is stops the replacement of those inside it, which it has imported already)."""
    replaced: list[str] = []
    for name in PACKAGES:
        if name in sys.modules or not _on_demand(name):
            break
        replaced.append(name)
    return replaced
