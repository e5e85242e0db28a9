"""RabbitMQ as the chart starts it answers: the management API's /api/overview as the default user,
then an AMQP 0-9-1 connection on 5672 (the protocol header; the broker answers with Connection.Start).

Run by `hack/offline/images.sh check` with `docker exec` in the dev RabbitMQ container, whose environment holds
RABBITMQ_DEFAULT_USER and RABBITMQ_DEFAULT_PASS; the standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import urllib.request


def main() -> None:
    user, password = os.environ["RABBITMQ_DEFAULT_USER"], os.environ["RABBITMQ_DEFAULT_PASS"]
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request("http://localhost:15672/api/overview", headers={"Authorization": "Basic " + auth})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  # nosec B310
            overview = json.load(response)
    except (OSError, ValueError) as error:
        sys.exit(f"/api/overview: {error}")
    try:
        with socket.create_connection(("localhost", 5672), timeout=5) as amqp:
            amqp.sendall(b"AMQP\x00\x00\x09\x01")
            start = amqp.recv(7)
    except OSError as error:
        sys.exit(f"port 5672: {error}")
    if start[:3] != b"\x01\x00\x00":
        sys.exit(f"port 5672: no AMQP 0-9-1 Connection.Start ({start!r})")
    print(
        f"rabbitmq {overview['rabbitmq_version']} (erlang {overview['erlang_version']}), "
        f"node {overview['node']}, AMQP on 5672"
    )


if __name__ == "__main__":
    main()
