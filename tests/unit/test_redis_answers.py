"""How the Redis door sorts a failed call: unavailable (retry with back-off) or refused (the spec
must change). Pure: the exceptions are redis-py's own, as its parser raises them for each reply."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from platform_operator.redis_store import CacheRefused, CacheUnavailable, _sorted


@pytest.mark.parametrize(
    "exc",
    [
        RedisConnectionError("Connection refused"),
        RedisTimeoutError("Timeout reading from socket"),
        ConnectionRefusedError(111, "refused"),
        AuthenticationError("WRONGPASS invalid username-password pair"),
        BusyLoadingError("Redis is loading the dataset in memory"),
        ReadOnlyError("You can't write against a read only replica."),
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        ResponseError("BUSY Redis is busy running a script."),
        ResponseError("MASTERDOWN Link with MASTER is down"),
        ResponseError("TRYAGAIN Multiple keys request during rehashing of slot"),
        NoPermissionError("this user has no permissions to run the 'acl|setuser' command"),
    ],
)
def test_what_a_retry_may_cure_is_unavailable(exc: Exception) -> None:
    assert isinstance(_sorted(exc, "ACL SETUSER"), CacheUnavailable)


@pytest.mark.parametrize(
    "exc",
    [
        ResponseError("Error in ACL SETUSER modifier 'nonsense': Syntax error"),
        ResponseError("Usernames can't contain spaces or null characters"),
        ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ResponseError("invalid expire time in 'set' command"),
    ],
)
def test_an_error_reply_to_the_call_itself_is_refused(exc: Exception) -> None:
    assert isinstance(_sorted(exc, "ACL SETUSER"), CacheRefused)


def test_the_message_is_the_operators_not_redis_and_names_the_admin_for_noperm() -> None:
    refused = _sorted(ResponseError("Error in ACL SETUSER modifier '#0123abcd'"), "ACL SETUSER")
    assert "0123abcd" not in str(refused) and "ACL SETUSER" in str(refused)
    noperm = _sorted(NoPermissionError("no permissions"), "ACL GETUSER")
    assert "admin user" in str(noperm) and "NOPERM" in str(noperm)
