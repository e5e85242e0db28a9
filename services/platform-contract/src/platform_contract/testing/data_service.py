"""The tests every data service passes the same way, written once: a service's test module
subclasses a contract, names its own parts in class attributes, and pytest runs the tests as its.

The suite's conftest provides the fixture `data_service` (its DataService) and imports the fixtures
at the end of this module; the module-scoped `database_url` (a test database of the module's own) is
the suite's own. `DataSettingsContract` needs none of them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import ValidationError

from platform_contract.domain import KeyTaken
from platform_contract.testing import (
    JsonLogs,
    RunningApp,
    app_runner,
    capture_json_logs,
    counter,
    free_port,
    run_module,
    serve_until_sigterm,
    service_env,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


class DataService:
    """One data service's names, for the contracts below."""

    settings_class: ClassVar[Any]
    service: ClassVar[str]  # "users-data"
    collection: ClassVar[str]  # "/users"
    id_route: ClassVar[str]  # "/users/{user_id}", the route of one resource
    key: ClassVar[str]  # "email": unique per resource, a query parameter of the collection
    taken: ClassVar[str]  # "a user with email {} already exists"
    noun: ClassVar[str]  # "user"
    unreachable_url: ClassVar[str]  # a DATABASE_URL with a password, on {port} where nothing listens
    # for DataSettingsContract
    example_url: ClassVar[str]  # a DATABASE_URL the service takes
    other_engine: ClassVar[str]  # an engine of the CRD that the service refuses
    refusal: ClassVar[str]  # a pattern of the message that refuses it

    def build_app(self, settings: Any) -> Any:
        raise NotImplementedError

    @property
    def package(self) -> str:
        return self.service.replace("-", "_")

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment the operator would give the container: its own settings only."""
        own = {"SERVICE_NAME": self.service, "DATABASE_ENGINE": self.settings_class.ENGINE}
        return service_env(self.settings_class, **{**own, **overrides})

    def new_key(self) -> str:
        raise NotImplementedError

    def check_example_url(self, settings: Any) -> None:
        """Asserts what the service made of example_url."""
        raise NotImplementedError

    def other_case(self, key: str) -> str:
        """The key as a client may write it, which the service takes for the same one."""
        raise NotImplementedError

    def body(self, key: str) -> dict[str, Any]:
        """A valid new resource with this key."""
        raise NotImplementedError

    async def create(self, client: httpx.AsyncClient, key: str | None = None) -> dict[str, Any]:
        response = await client.post(self.collection, json=self.body(key or self.new_key()))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


class DataApiContract(DataService):
    """The HTTP API every data service has: CRUD by id, lookup by key, request ids, traces, probes."""

    unreachable: ClassVar[str]  # how the driver says that nothing listens ("Connection refused")
    starting: ClassVar[str]  # /ready's reason while the startup step has not succeeded
    unreachable_settings: ClassVar[dict[str, Any]] = {}

    @property
    def access_log(self) -> str:
        return f"{self.package}.access"

    async def test_duplicate_key_is_409(self, client: httpx.AsyncClient) -> None:
        key = self.new_key()
        await self.create(client, key)

        response = await client.post(self.collection, json=self.body(self.other_case(key)))

        assert response.status_code == 409
        assert response.json() == {"detail": self.taken.format(key)}
        assert len((await client.get(self.collection, params={self.key: key})).json()) == 1

    async def test_get_by_id(self, client: httpx.AsyncClient) -> None:
        made = await self.create(client)

        response = await client.get(f"{self.collection}/{made['id']}")

        assert response.status_code == 200
        assert response.json() == made

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient) -> None:
        missing = uuid.uuid4()
        response = await client.get(f"{self.collection}/{missing}")

        assert response.status_code == 404
        assert response.json() == {"detail": f"no {self.noun} with id {missing}"}

    async def test_malformed_id_is_422(self, client: httpx.AsyncClient) -> None:
        assert (await client.get(f"{self.collection}/42")).status_code == 422

    async def test_list_by_key_finds_the_one_in_any_case(self, client: httpx.AsyncClient) -> None:
        key = self.new_key()
        made = await self.create(client, key)
        await self.create(client)

        found = await client.get(self.collection, params={self.key: self.other_case(key)})
        not_found = await client.get(self.collection, params={self.key: self.new_key()})

        assert found.status_code == 200
        assert found.json() == [made]
        assert not_found.json() == []

    async def test_list_without_key_pages_through_everything(self, client: httpx.AsyncClient) -> None:
        for _ in range(3):
            await self.create(client)

        everything = (await client.get(self.collection, params={"limit": 500})).json()
        page = (await client.get(self.collection, params={"limit": 2, "offset": 1})).json()

        assert len(everything) >= 3
        assert page == everything[1:3]
        assert (await client.get(self.collection, params={"limit": 0})).status_code == 422
        assert (await client.get(self.collection, params={"limit": 501})).status_code == 422

    async def test_patch_to_a_key_in_use_is_409_and_changes_nothing(self, client: httpx.AsyncClient) -> None:
        one, other = await self.create(client), await self.create(client)

        response = await client.patch(
            f"{self.collection}/{other['id']}", json={self.key: one[self.key], "name": "Renamed"}
        )

        assert response.status_code == 409
        assert response.json() == {"detail": self.taken.format(one[self.key])}
        assert (await client.get(f"{self.collection}/{other['id']}")).json() == other

    async def test_patch_of_an_unknown_id_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.patch(f"{self.collection}/{uuid.uuid4()}", json={"name": "Nobody"})
        assert response.status_code == 404

    async def test_delete_then_it_is_gone(self, client: httpx.AsyncClient) -> None:
        made = await self.create(client)
        url = f"{self.collection}/{made['id']}"

        response = await client.delete(url)

        assert response.status_code == 204
        assert response.content == b""
        assert (await client.get(url)).status_code == 404
        assert (await client.delete(url)).status_code == 404
        await self.create(client, made[self.key])  # the key is free again

    async def test_request_id_is_echoed_and_logged(self, client: httpx.AsyncClient, json_logs: JsonLogs) -> None:
        response = await client.get(
            f"{self.collection}/{uuid.uuid4()}", headers={"X-Request-ID": "req-from-orders-api-1"}
        )

        assert response.headers["x-request-id"] == "req-from-orders-api-1"
        access = [e for e in json_logs() if e["logger"] == self.access_log]
        assert access[-1]["request_id"] == "req-from-orders-api-1"
        assert access[-1]["route"] == self.id_route
        assert access[-1]["status"] == 404

    async def test_request_id_is_generated_when_absent(self, client: httpx.AsyncClient) -> None:
        first = await client.get("/health")
        second = await client.get("/health")

        generated = first.headers["x-request-id"]
        assert len(generated) == 32 and int(generated, 16) >= 0
        assert second.headers["x-request-id"] != generated

    async def test_a_request_id_that_is_not_sane_is_replaced(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health", headers={"X-Request-ID": "x" * 500})
        assert response.headers["x-request-id"] != "x" * 500

    async def test_the_callers_trace_continues_in_the_logs(
        self, client: httpx.AsyncClient, json_logs: JsonLogs
    ) -> None:
        traceparent = f"00-{TRACE_ID}-b7ad6b7169203331-01"
        await client.get(self.collection, params={self.key: self.new_key()}, headers={"traceparent": traceparent})

        access = [e for e in json_logs() if e["logger"] == self.access_log]
        assert access[-1]["trace_id"] == TRACE_ID

    async def test_request_id_header_name_comes_from_settings(self, settings: Any, running_app: RunningApp) -> None:
        custom = settings.model_copy(update={"request_id_header": "X-Correlation-ID"})
        async with running_app(custom) as client:
            response = await client.get("/health", headers={"X-Correlation-ID": "corr-7"})

        assert response.headers["x-correlation-id"] == "corr-7"
        assert "x-request-id" not in response.headers

    async def test_health_and_ready_with_the_database_up(self, client: httpx.AsyncClient) -> None:
        health = await client.get("/health")
        ready = await client.get("/ready")

        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert (ready.status_code, ready.json()) == (200, {"status": "ready", "database": "ok"})

    @pytest.mark.parametrize("migrate_on_startup", [True, False])
    async def test_ready_is_false_when_the_database_is_unreachable(
        self, unreachable_database_url: str, running_app: RunningApp, migrate_on_startup: bool
    ) -> None:
        settings = self.settings_class(
            DATABASE_URL=unreachable_database_url, MIGRATE_ON_STARTUP=migrate_on_startup, **self.unreachable_settings
        )
        async with running_app(settings, wait_ready=False) as client:
            for _ in range(100):  # until the first attempt of the startup step (or the ping) has failed
                ready = await client.get("/ready")
                if self.unreachable in ready.text:
                    break
                await asyncio.sleep(0.1)
            health = await client.get("/health")

        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert ready.json()["database"].startswith(self.starting if migrate_on_startup else "")
        assert self.unreachable in ready.json()["database"]
        assert "secret" not in ready.text
        assert health.status_code == 200  # alive, just not ready: no restart for a database outage

    async def test_metrics_count_requests_by_route_and_status(self, client: httpx.AsyncClient) -> None:
        before = (await client.get("/metrics")).text
        made = await self.create(client)
        await client.get(f"{self.collection}/{made['id']}")
        await client.get(f"{self.collection}/{uuid.uuid4()}")
        await client.get(f"{self.collection}/{uuid.uuid4()}")
        await client.get("/no/such/route")

        response = await client.get("/metrics")
        after = response.text

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")

        def delta(**labels: str) -> float:
            return counter(after, "http_requests_total", **labels) - counter(before, "http_requests_total", **labels)

        assert delta(method="POST", route=self.collection, status="201") == 1
        assert delta(method="GET", route=self.id_route, status="200") == 1
        assert delta(method="GET", route=self.id_route, status="404") == 2
        assert delta(method="GET", route="unmatched", status="404") == 1
        assert counter(after, "http_request_duration_seconds_count", route=self.id_route, status="404") >= 2
        assert f'route="{self.collection}/{made["id"]}' not in after  # one series per route, not per id
        assert counter(after, "process_open_fds") > 0


class DataProcessContract(DataService):
    """The service as its container runs it: `python -m <package>`."""

    # What the refusal says -> the variables that make `python -m <package> migrate` refuse to start.
    bad_settings: ClassVar[dict[str, dict[str, str]]]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "bad_setting" in metafunc.fixturenames:
            metafunc.parametrize("bad_setting", list(self.bad_settings.items()), ids=list(self.bad_settings))

    async def test_bad_settings_stop_the_process_with_a_reason(self, bad_setting: tuple[str, dict[str, str]]) -> None:
        message, overrides = bad_setting

        result = await run_module(self.package, "migrate", env=self.env(**overrides))

        assert result.returncode == 2
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert ":p@" not in result.stderr  # the URLs' password

    async def test_serves_on_its_port_and_shuts_down_cleanly_on_sigterm(
        self, database_url: str, http_port: int
    ) -> None:
        env = self.env(DATABASE_URL=database_url, HTTP_HOST="127.0.0.1", HTTP_PORT=str(http_port))

        served = await serve_until_sigterm(
            self.package, env, http_port, lambda client: client.post(self.collection, json=self.body(self.new_key()))
        )

        assert (served.ready.status_code, served.ready.headers["x-request-id"]) == (200, "probe-1")
        assert served.response.status_code == 201
        messages = [entry["message"] for entry in served.logs]
        assert "Application shutdown complete." in messages
        assert all(entry["service"] == self.service for entry in served.logs)
        assert not [e for e in served.logs if e["level"] == "ERROR"]
        assert any(e.get("route") == self.collection and e.get("status") == 201 for e in served.logs)


class DataSettingsContract(DataService):
    """The settings every data service reads from what the operator gives it (pure, no database)."""

    def test_settings_read_the_operators_variables(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DATABASE_URL", self.example_url)
        monkeypatch.setenv("DATABASE_ENGINE", self.settings_class.ENGINE)
        monkeypatch.setenv("REQUEST_ID_HEADER", "X-Correlation-ID")
        monkeypatch.setenv("SERVICE_NAME", self.service)

        settings = self.settings_class()

        self.check_example_url(settings)
        assert settings.request_id_header == "X-Correlation-ID"
        assert settings.service_name == self.service
        assert settings.http_port == 8000
        assert settings.migrate_on_startup is True

    def test_the_startup_step_can_be_turned_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MIGRATE_ON_STARTUP", "false")
        assert self.settings_class().migrate_on_startup is False

    def test_another_engine_is_refused_with_what_to_do(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DATABASE_ENGINE", self.other_engine)
        with pytest.raises(ValidationError, match=self.refusal):
            self.settings_class()


async def only_one_is_made(record: type, creations: Iterable[Awaitable[object]]) -> None:
    """Runs concurrent creations of records with one unique key: exactly one makes its `record`,
    every other one is refused with KeyTaken (the database's unique index, not a read before the
    write, decides)."""
    results = await asyncio.gather(*creations, return_exceptions=True)
    assert sum(isinstance(r, record) for r in results) == 1, results
    assert sum(isinstance(r, KeyTaken) for r in results) == len(results) - 1, results


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def running_app(data_service: DataService) -> RunningApp:
    """running_app(settings, wait_ready=True): see platform_contract.testing.app_runner."""
    return app_runner(data_service.build_app, f"http://{data_service.service}")


@pytest.fixture
def json_logs(data_service: DataService) -> Iterator[JsonLogs]:
    """The service's log lines, formatted as in production."""
    with capture_json_logs(data_service.package, data_service.service) as lines:
        yield lines


@pytest.fixture(scope="module")
def settings(data_service: DataService, database_url: str) -> Any:
    """The service's settings on this module's database, as the operator would give them."""
    engine = data_service.settings_class.ENGINE
    return data_service.settings_class(
        DATABASE_URL=database_url, DATABASE_ENGINE=engine, SERVICE_NAME=data_service.service
    )


@pytest.fixture
def unreachable_database_url(data_service: DataService) -> str:
    """A database that is down: a local port where nothing listens."""
    return data_service.unreachable_url.format(port=free_port())
