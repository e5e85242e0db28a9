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


# What a retry may cure is unavailable; an error reply to the call itself is refused.
@pytest.mark.parametrize(
    ("exc", "answer"),
    [
        (RedisConnectionError("Connection refused"), CacheUnavailable),
        (RedisTimeoutError("Timeout reading from socket"), CacheUnavailable),
        (ConnectionRefusedError(111, "refused"), CacheUnavailable),
        (AuthenticationError("WRONGPASS invalid username-password pair"), CacheUnavailable),
        (BusyLoadingError("Redis is loading the dataset in memory"), CacheUnavailable),
        (ReadOnlyError("You can't write against a read only replica."), CacheUnavailable),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), CacheUnavailable),
        (ResponseError("BUSY Redis is busy running a script."), CacheUnavailable),
        (ResponseError("MASTERDOWN Link with MASTER is down"), CacheUnavailable),
        (ResponseError("TRYAGAIN Multiple keys request during rehashing of slot"), CacheUnavailable),
        (NoPermissionError("this user has no permissions to run the 'acl|setuser' command"), CacheUnavailable),
        (ResponseError("Error in ACL SETUSER modifier 'nonsense': Syntax error"), CacheRefused),
        (ResponseError("Usernames can't contain spaces or null characters"), CacheRefused),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), CacheRefused),
        (ResponseError("invalid expire time in 'set' command"), CacheRefused),
    ],
)
def test_a_failed_call_is_sorted_into_unavailable_or_refused(exc: Exception, answer: type[Exception]) -> None:
    assert type(_sorted(exc, "ACL SETUSER")) is answer


def test_the_message_is_the_operators_not_redis_and_names_the_admin_for_noperm() -> None:
    refused = _sorted(ResponseError("Error in ACL SETUSER modifier '#0123abcd'"), "ACL SETUSER")
    assert "0123abcd" not in str(refused) and "ACL SETUSER" in str(refused)
    noperm = _sorted(NoPermissionError("no permissions"), "ACL GETUSER")
    assert "admin user" in str(noperm) and "NOPERM" in str(noperm)
