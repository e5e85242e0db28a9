"""A MongoDB-wire server answers: ping, insert a document, count it back; prints the server's version.

Run by `hack/offline/images.sh check` with the base image's Python inside the demo database's network namespace
(the image has no shell and no client), so it needs nothing beyond the standard library: OP_MSG and a
minimal BSON, enough for these four commands. Usage: python3 mongo_wire.py [HOST [PORT]]
(localhost 27017 by default).
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Any

OP_MSG = 2013


def encode(doc: dict[str, Any]) -> bytes:
    out = b""
    for key, value in doc.items():
        k = key.encode() + b"\0"
        if isinstance(value, str):
            v = value.encode() + b"\0"
            out += b"\x02" + k + struct.pack("<i", len(v)) + v
        elif isinstance(value, bool):
            out += b"\x08" + k + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            out += b"\x10" + k + struct.pack("<i", value)
        elif isinstance(value, dict):
            out += b"\x03" + k + encode(value)
        elif isinstance(value, list):
            out += b"\x04" + k + encode({str(i): x for i, x in enumerate(value)})
        else:
            raise TypeError(f"{key}: {type(value).__name__} is not encoded here")
    return struct.pack("<i", len(out) + 5) + out + b"\0"


def decode(b: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    i = 4
    while b[i] != 0:
        kind = b[i]
        end = b.index(b"\0", i + 1)
        key = b[i + 1 : end].decode()
        i = end + 1
        if kind == 0x01:  # double
            doc[key] = struct.unpack_from("<d", b, i)[0]
            i += 8
        elif kind == 0x02:  # string
            n = struct.unpack_from("<i", b, i)[0]
            doc[key] = b[i + 4 : i + 3 + n].decode()
            i += 4 + n
        elif kind in (0x03, 0x04):  # document, array
            n = struct.unpack_from("<i", b, i)[0]
            sub = decode(b[i : i + n])
            doc[key] = sub if kind == 0x03 else list(sub.values())
            i += n
        elif kind == 0x05:  # binary: skipped
            n = struct.unpack_from("<i", b, i)[0]
            i += 5 + n
        elif kind == 0x07:  # ObjectId: skipped
            i += 12
        elif kind == 0x08:  # bool
            doc[key] = b[i] == 1
            i += 1
        elif kind in (0x09, 0x11, 0x12):  # datetime, timestamp, int64
            doc[key] = struct.unpack_from("<q", b, i)[0]
            i += 8
        elif kind == 0x0A:  # null
            doc[key] = None
        elif kind == 0x10:  # int32
            doc[key] = struct.unpack_from("<i", b, i)[0]
            i += 4
        else:
            raise ValueError(f"BSON type {kind:#x}")
    return doc


def receive(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("the server closed the connection")
        data += chunk
    return data


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.request_id = 0

    def command(self, doc: dict[str, Any]) -> dict[str, Any]:
        self.request_id += 1
        body = struct.pack("<I", 0) + b"\x00" + encode(doc)  # flag bits, then one section of kind 0
        self.sock.sendall(struct.pack("<iiii", 16 + len(body), self.request_id, 0, OP_MSG) + body)
        length = struct.unpack("<i", receive(self.sock, 16)[:4])[0]
        reply = decode(receive(self.sock, length - 16)[5:])
        if reply.get("ok") != 1.0:
            sys.exit(f"{doc}: {reply}")
        return reply


def main(argv: list[str]) -> None:
    host = argv[1] if len(argv) > 1 else "localhost"
    port = int(argv[2]) if len(argv) > 2 else 27017
    try:
        sock = socket.create_connection((host, port), timeout=5)
    except OSError as error:
        sys.exit(f"port {port}: {error}")
    with sock:
        client = Client(sock)
        client.command({"ping": 1, "$db": "admin"})
        inserted = client.command({"insert": "check", "documents": [{"_id": "one", "x": 42}], "$db": "check"})
        count = client.command({"count": "check", "query": {"x": 42}, "$db": "check"})
        info = client.command({"buildInfo": 1, "$db": "admin"})
    print(
        f"ping, insert (n={inserted['n']}), count (n={count['n']}); "
        f"reports MongoDB {info.get('version')}, {info.get('ferretdbVersion', '')}"
    )


if __name__ == "__main__":
    main(sys.argv)
