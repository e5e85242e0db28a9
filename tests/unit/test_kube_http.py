"""Kube's HTTP behaviour: what it sends, and how it waits out 429 and 5xx and logs in again on 401.

The API server is a small aiohttp server on 127.0.0.1 that answers from a script; the client is
the real one (kubernetes-asyncio's ApiClient inside Kube)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio.client import Configuration

from platform_operator.kube import FIELD_MANAGER, Kube, Retry, UnavailableError

SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}, "stringData": {"a": "1"}}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class FakeApiServer:
    """Answers each request with the next (status, headers) of `script`, then 200 with the object."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=lambda: {"good"})
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.seen.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body, time.monotonic())
        )
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
            return web.json_response({"kind": "Status", "message": "Unauthorized", "code": 401}, status=401)
        if self.script:
            status, headers = self.script.pop(0)
            return web.json_response({"kind": "Status", "message": f"said {status}"}, status=status, headers=headers)
        return web.json_response({**(body or {}), "metadata": {"name": "s", "namespace": "ns", "uid": "u1"}})


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    fake = FakeApiServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


def configuration(url: str, token: str = "good") -> Configuration:
    config = Configuration(host=url)
    config.api_key["BearerToken"] = f"Bearer {token}"
    return config


@pytest.fixture
async def make_kube(server: FakeApiServer) -> AsyncIterator[Callable[..., Kube]]:
    made: list[Kube] = []

    def make(retry: Retry | None = None, token: str = "good", **kw: Any) -> Kube:
        kube = Kube(configuration(server.url, token), retry=retry or Retry(first_wait=0.05), **kw)
        made.append(kube)
        return kube

    yield make
    for kube in made:
        await kube.close()


async def test_apply_is_a_server_side_apply_under_our_field_manager(server: FakeApiServer, make_kube):
    applied = await make_kube().apply(SECRET)
    assert applied["metadata"]["uid"] == "u1"
    [seen] = server.seen
    assert (seen.method, seen.path) == ("PATCH", "/api/v1/namespaces/ns/secrets/s")
    assert seen.query == {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
    assert seen.headers["Content-Type"] == "application/apply-patch+yaml"
    assert seen.headers["Authorization"] == "Bearer good"
    assert seen.headers["User-Agent"] == "platform-operator"
    assert seen.body == SECRET


async def test_delete_sends_the_uid_precondition(server: FakeApiServer, make_kube):
    assert await make_kube().delete("v1", "Secret", "ns", "s", "u1") is True
    [seen] = server.seen
    assert seen.method == "DELETE"
    assert seen.body["preconditions"] == {"uid": "u1"}


async def test_a_429_is_waited_out_as_long_as_retry_after_says_and_asked_again(server: FakeApiServer, make_kube):
    server.script = [(429, {"Retry-After": "1"})]
    applied = await make_kube().apply(SECRET)
    assert applied["metadata"]["name"] == "s"
    first, second = server.seen
    assert second.at - first.at >= 1.0


async def test_retry_after_as_an_http_date_is_honoured(server: FakeApiServer, make_kube):
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    server.script = [(503, {"Retry-After": when})]
    assert await make_kube().get("v1", "Secret", "ns", "s") is not None
    first, second = server.seen
    assert second.at - first.at >= 0.5  # the date has a resolution of one second


async def test_5xx_without_retry_after_is_asked_again_after_a_back_off(server: FakeApiServer, make_kube):
    server.script = [(500, {}), (502, {}), (504, {})]
    assert await make_kube().get("v1", "Secret", "ns", "s") is not None
    assert len(server.seen) == 4
    gaps = [b.at - a.at for a, b in zip(server.seen, server.seen[1:], strict=False)]
    assert all(gap >= 0.02 for gap in gaps)  # first_wait 0.05 with jitter down to half
    assert gaps[2] > gaps[0]  # doubling


async def test_5xx_gives_up_after_the_last_try_as_unavailable(server: FakeApiServer, make_kube):
    server.script = [(503, {})] * 10
    with pytest.raises(UnavailableError, match=r"HTTP 503 said 503 \(after 3 attempts\)"):
        await make_kube(Retry(tries=3, first_wait=0.01)).get("v1", "Secret", "ns", "s")
    assert len(server.seen) == 3


async def test_a_retry_after_beyond_the_bound_is_not_cut_short_but_ends_the_call(server: FakeApiServer, make_kube):
    """Asking sooner than the server allows would only add to its load: kopf's back-off takes over."""
    server.script = [(429, {"Retry-After": "120"})]
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="HTTP 429"):
        await make_kube(Retry(max_wait=10)).apply(SECRET)
    assert time.monotonic() - started < 2
    assert len(server.seen) == 1


async def test_waits_stop_at_the_deadline(server: FakeApiServer, make_kube):
    server.script = [(429, {"Retry-After": "0.4"})] * 10
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="HTTP 429"):
        await make_kube(Retry(tries=10, max_wait=1, deadline=1)).get("v1", "Secret", "ns", "s")
    assert time.monotonic() - started < 1.5
    assert len(server.seen) == 3  # waits at 0 and 0.4 s; a third would end at 1.2 s


async def test_a_401_loads_the_credentials_again_and_repeats_the_request_once(server: FakeApiServer, make_kube):
    server.tokens = {"new"}
    logins: list[str] = []

    async def reload() -> Configuration:
        logins.append("again")
        return configuration(server.url, "new")

    kube = make_kube(token="old", reload=reload)
    assert await kube.get("v1", "Secret", "ns", "s") is not None
    assert await kube.get("v1", "Secret", "ns", "s") is not None
    assert logins == ["again"]
    assert [s.headers["Authorization"] for s in server.seen] == ["Bearer old", "Bearer new", "Bearer new"]


async def test_credentials_that_stay_refused_are_unavailable_not_a_loop(server: FakeApiServer, make_kube):
    server.tokens = set()

    async def reload() -> Configuration:
        return configuration(server.url, "still-wrong")

    with pytest.raises(UnavailableError, match="HTTP 401"):
        await make_kube(reload=reload).get("v1", "Secret", "ns", "s")
    assert len(server.seen) == 2


async def test_the_environments_proxy_is_used_for_an_api_server_no_proxy_does_not_exempt(
    server: FakeApiServer, monkeypatch: pytest.MonkeyPatch
):
    """HTTP_PROXY is read when the client is made (not looked up per request): a request to a host
    that only the proxy can reach arrives at the proxy (here the fake answers as the proxy)."""
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    kube = Kube(configuration("http://api.platform.invalid"), retry=Retry(first_wait=0.05))
    try:
        assert (await kube.get("v1", "Secret", "ns", "s"))["metadata"]["uid"] == "u1"
        [seen] = server.seen
        assert (seen.method, seen.path) == ("GET", "/api/v1/namespaces/ns/secrets/s")
    finally:
        await kube.close()


async def test_no_proxy_exempts_the_api_server_from_the_environments_proxy(
    server: FakeApiServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    kube = Kube(configuration(server.url), retry=Retry(first_wait=0.05))
    try:
        assert (await kube.get("v1", "Secret", "ns", "s"))["metadata"]["uid"] == "u1"
    finally:
        await kube.close()
    monkeypatch.setenv("NO_PROXY", "other.example")
    kube = Kube(configuration(server.url), retry=Retry(tries=1))
    try:
        with pytest.raises(UnavailableError):
            await kube.get("v1", "Secret", "ns", "s")
    finally:
        await kube.close()


async def test_kopfs_login_takes_the_environments_proxy_once_and_does_not_trust_the_environment_per_request(
    monkeypatch: pytest.MonkeyPatch,
):
    import kopf

    from platform_operator import kube as kube_module

    async def logged_in(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server="https://api.platform.invalid:6443", token="t")

    monkeypatch.setattr(kopf, "login_via_async_client", logged_in)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.platform.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    info = await kube_module.login()
    assert (info.proxy_url, info.trust_env) == ("http://proxy.platform.invalid:3128", False)
    monkeypatch.setenv("NO_PROXY", ".platform.invalid")
    info = await kube_module.login()
    assert (info.proxy_url, info.trust_env) == (None, False)
