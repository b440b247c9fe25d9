"""A pgbench-style writer for patroni_switch.py, run in the client's namespace (standard library
only): one persistent connection to PostgreSQL through the VIP, an INSERT every 1/RATE s that
stores the server's identity (the last part of its data_directory: db1 or db2) and the client's
time, a new connection on any error.  Beside it a thread reads Patroni's leader key from etcd
and each member's role
every 5 ms (v3 or v2 API) and notes each change.  Times are monotonic seconds (one clock for the
whole machine: the benchmark compares them with its own).

It speaks PostgreSQL's protocol 3 itself (startup, trust authentication, simple query) rather
than through libpq, whose connect_timeout cannot be under 2 s: a connection attempt leaves every
10 ms, each given 0.5 s, without waiting for the earlier ones, so that a SYN lost while the VIP
moves does not hide the new primary for a TCP retransmission time (1 s, then 3 s).

usage: _pg_writer.py VIP ETCD_ADDRESS v2|v3 PREFIX RATE  (PREFIX: /service/SCOPE/)
stdin: ``status`` (answers {"ok": count, "last": [time, member]}) or ``stop`` (answers every
record: {"ok": [[time, member]...], "failed": [[time, why, member]...], "leaders": [[time, leader,
{member: role}]...]}).
"""

from __future__ import annotations

import base64
import http.client
import json
import selectors
import socket
import struct
import sys
import threading
import time

PORT = 5432
ATTEMPT_EVERY = 0.01
ATTEMPT_LIFE = 0.5
REPLY_TIMEOUT = 1.0
CREATE = "CREATE TABLE IF NOT EXISTS bench_writes (member text, client_time float8)"
INSERT = (
    "INSERT INTO bench_writes VALUES (current_setting('data_directory'), {sent!r}) RETURNING member"
)


class Closed(Exception):
    """The session is over (closed by the server, a FATAL error, a timeout)."""


class Session:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        sock.settimeout(REPLY_TIMEOUT)
        body = struct.pack("!I", 196608) + b"user\0postgres\0database\0postgres\0\0"
        self._send(struct.pack("!I", len(body) + 4) + body)
        self.until_ready()
        # which server this is (db1 or db2), for the failures that follow on this connection
        member, error = self.query("SELECT current_setting('data_directory')")
        if error is not None or member is None:
            raise Closed(error or "no row")
        self.member = member.rsplit("/", 1)[-1]

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise Closed(f"send: {exc}") from exc

    def _message(self) -> tuple[bytes, bytes]:
        while True:
            if len(self.buffer) >= 5:
                length = struct.unpack("!I", self.buffer[1:5])[0]
                if len(self.buffer) >= 1 + length:
                    kind, body = bytes(self.buffer[:1]), bytes(self.buffer[5 : 1 + length])
                    del self.buffer[: 1 + length]
                    return kind, body
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                raise Closed(f"receive: {exc}") from exc
            if not chunk:
                raise Closed("the server closed the connection")
            self.buffer += chunk

    def until_ready(self) -> tuple[str | None, str | None]:
        """Messages up to ReadyForQuery: (first column of the first row, the error)."""
        value: str | None = None
        error: str | None = None
        while True:
            kind, body = self._message()
            if kind == b"Z":
                return value, error
            if kind == b"R" and struct.unpack("!I", body[:4])[0] != 0:
                raise Closed("the server asks for a password: this writer needs trust")
            if kind == b"D" and value is None:
                length = struct.unpack("!i", body[2:6])[0]
                value = body[6 : 6 + length].decode() if length >= 0 else None
            if kind == b"E":
                fields = {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}
                error = f"{fields.get(b'C', '')} {fields.get(b'M', '')}"
                if fields.get(b"V", fields.get(b"S")) in ("FATAL", "PANIC"):
                    raise Closed(error)

    def query(self, sql: str) -> tuple[str | None, str | None]:
        self._send(b"Q" + struct.pack("!I", len(sql) + 5) + sql.encode() + b"\0")
        return self.until_ready()

    def close(self) -> None:
        self.sock.close()


def connect(vip: str, stop: threading.Event) -> socket.socket | None:
    """The first of the attempts (one every ATTEMPT_EVERY s) that connects."""
    selector = selectors.DefaultSelector()
    born: dict[socket.socket, float] = {}
    last = 0.0
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now - last >= ATTEMPT_EVERY:
                last = now
                attempt = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                attempt.setblocking(False)
                attempt.connect_ex((vip, PORT))
                selector.register(attempt, selectors.EVENT_WRITE)
                born[attempt] = now
            for key, _ in selector.select(timeout=max(0.0, last + ATTEMPT_EVERY - now)):
                ready: socket.socket = key.fileobj  # type: ignore[assignment]
                selector.unregister(ready)
                del born[ready]
                if ready.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    ready.setblocking(True)
                    return ready
                ready.close()
            for old in [s for s, t in born.items() if time.monotonic() - t > ATTEMPT_LIFE]:
                selector.unregister(old)
                del born[old]
                old.close()
        return None
    finally:
        for attempt in born:
            attempt.close()
        selector.close()


Records = list[list[object]]


def write(vip: str, rate: float, stop: threading.Event, ok: Records, failed: Records) -> None:
    session: Session | None = None
    due = time.monotonic()
    while not stop.is_set():
        if session is None:
            sock = connect(vip, stop)
            if sock is None:
                break
            try:
                session = Session(sock)
            except Closed:
                sock.close()  # starting up, shutting down: not a transaction
                time.sleep(ATTEMPT_EVERY)
                continue
        due = max(due + 1 / rate, time.monotonic())
        time.sleep(max(0.0, due - time.monotonic()))
        try:
            member, error = session.query(INSERT.format(sent=time.monotonic()))
        except Closed as exc:
            failed.append([time.monotonic(), str(exc)[:160], session.member])
            session.close()
            session = None
            continue
        if error is not None or member is None:
            failed.append([time.monotonic(), (error or "no row")[:160], session.member])
            session.close()
            session = None
        else:
            ok.append([time.monotonic(), member.rsplit("/", 1)[-1]])


def read_keys(connection: http.client.HTTPConnection, api: str, prefix: str) -> dict[str, str]:
    """Every key under ``prefix`` (v3 range or v2 recursive get) -> its value."""
    if api == "v3":
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        query = {"key": base64.b64encode(prefix.encode()).decode(),
                 "range_end": base64.b64encode(end.encode()).decode()}  # fmt: skip
        connection.request("POST", "/v3/kv/range", json.dumps(query))
        kvs = json.loads(connection.getresponse().read()).get("kvs") or []
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
                for kv in kvs}  # fmt: skip
    connection.request("GET", f"/v2/keys{prefix.rstrip('/')}?recursive=true")
    reply = connection.getresponse()
    body = json.loads(reply.read())
    found: dict[str, str] = {}
    pending = [body["node"]] if reply.status == 200 else []
    while pending:
        node = pending.pop()
        pending += node.get("nodes", [])
        if "value" in node:
            found[node["key"]] = node["value"]
    return found


def watch_leader(address: str, api: str, prefix: str, stop: threading.Event, seen: Records) -> None:
    """Patroni's leader key and each member's role, as [time, leader, {member: role}] on each
    change (``prefix``: /service/SCOPE/)."""
    connection = http.client.HTTPConnection(address, 2379, timeout=2)
    last: object = None
    while not stop.wait(0.005):
        try:
            keys = read_keys(connection, api, prefix)
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            connection.close()
            connection = http.client.HTTPConnection(address, 2379, timeout=2)
            continue
        roles = {}
        for key, value in keys.items():
            if key.startswith(prefix + "members/"):
                try:
                    roles[key.rsplit("/", 1)[-1]] = str(json.loads(value).get("role"))
                except (ValueError, AttributeError):
                    roles[key.rsplit("/", 1)[-1]] = "?"
        now = [keys.get(prefix + "leader"), roles]
        if now != last:
            seen.append([time.monotonic(), *now])
            last = now


def main() -> None:
    vip, etcd, api, key, rate = sys.argv[1:6]
    stop = threading.Event()
    ok: Records = []
    failed: Records = []
    leaders: Records = []
    threads = [
        threading.Thread(target=write, args=(vip, float(rate), stop, ok, failed)),
        threading.Thread(target=watch_leader, args=(etcd, api, key, stop, leaders)),
    ]
    for thread in threads:
        thread.start()
    for line in sys.stdin:
        if line.strip() == "status":
            print(json.dumps({"ok": len(ok), "last": ok[-1] if ok else None}), flush=True)
        elif line.strip() == "stop":
            break
    stop.set()
    for thread in threads:
        thread.join()
    print(json.dumps({"ok": ok, "failed": failed, "leaders": leaders}), flush=True)


if __name__ == "__main__":
    main()
