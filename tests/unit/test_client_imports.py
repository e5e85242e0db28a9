"""The Kubernetes client imported on demand (client_imports): the same names, the library's own
objects, and only the modules used. Each check runs in a fresh interpreter, since the point is
what gets imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from platform_operator.client_imports import _exports


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kopf_and_the_operator_import_a_few_of_the_clients_modules_not_all() -> None:
    out = run(
        """
        from platform_operator import client_imports
        print(",".join(client_imports.defer()))
        import kopf, platform_operator.handlers, sys
        print(sum(m.startswith("kubernetes_asyncio.client.models.") for m in sys.modules))
        """
    )
    replaced, models = out.split()
    assert replaced.split(",") == [
        "kubernetes_asyncio",
        "kubernetes_asyncio.client",
        "kubernetes_asyncio.client.api",
        "kubernetes_asyncio.client.models",
    ]
    assert 0 < int(models) < 10  # kopf's V1ObjectMeta and V1OwnerReference, of ~770


def test_every_name_of_the_client_is_the_librarys_own_object() -> None:
    """Every name the four packages export, looked up through the on-demand modules, is the object
    the eager import gives (same module and qualified name), and kopf still knows a model."""
    out = run(
        """
        from platform_operator import client_imports
        client_imports.defer()
        import ast, importlib, sys
        import kubernetes_asyncio, kubernetes_asyncio.client as client
        from kopf._cogs.helpers.thirdparty import KubernetesModelAsync
        count = 0
        for name in client_imports.PACKAGES:
            module = sys.modules[name]
            names, literals = client_imports._exports(open(module.__file__).read())
            for attribute, (where, what) in names.items():
                value = getattr(module, attribute)
                real = importlib.import_module(where)
                assert value is (real if what is None else getattr(real, what)), (name, attribute)
                count += 1
            for attribute, literal in literals.items():
                assert getattr(module, attribute) == literal
        assert isinstance(client.V1Deployment(), KubernetesModelAsync)
        assert client.ApiClient.__module__ == "kubernetes_asyncio.client.api_client"
        assert kubernetes_asyncio.config.load_kube_config.__module__ == "kubernetes_asyncio.config.kube_config"
        print(count)
        """
    )
    assert int(out) > 1500


def test_a_package_that_does_more_on_import_is_left_to_import_as_usual() -> None:
    assert _exports("from kubernetes_asyncio.client.a import A\n__version__ = '1'\n") is not None
    assert _exports("from kubernetes_asyncio.client.a import A\nimport os\n") is None
    assert _exports("from .a import A\n") is None
    assert _exports("def configure():\n    pass\n") is None
    assert _exports("x = compute()\n") is None


def test_a_client_imported_already_is_left_alone() -> None:
    out = run(
        """
        import kubernetes_asyncio
        from platform_operator import client_imports
        print(client_imports.defer() == [])
        """
    )
    assert out.strip() == "True"
