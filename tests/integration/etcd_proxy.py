"""A proxy in front of one etcd member that can withhold etcd's answers.

The test process reaches an etcd member in a sandbox namespace through a Unix socket: grpc takes
``unix:PATH`` targets, and a path-bound Unix socket is not in any network namespace.  Each
connection accepted there is carried on by a TCP connection made inside the member's namespace
(by a thread that entered it), so no traffic leaves the sandbox.

``hold()`` lets requests through (etcd receives and commits them) but withholds every answer: a
call then times out *after* etcd took it, which no fault of etcd itself can produce on demand.
``resume()`` closes the connections held that way (the client reconnects) and passes answers
again.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from pathlib import Path

from floatingip.etcd_client import Endpoint

CLONE_NEWNET = 0x40000000
PORT = 2379  # aetcd makes the target "HOST:PORT": the socket's name ends with ":2379"


def enter_namespace(namespace: str) -> None:
    """Move the calling thread (only it: a network namespace is per thread) into ``namespace``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {namespace}")
    finally:
        os.close(fd)


class EtcdProxy:
    """Unix socket ``directory/etcd.sock:2379`` -> ``address``:2379 inside ``namespace``."""

    def __init__(self, namespace: str, address: str, directory: Path) -> None:
        self.namespace = namespace
        self.address = address
        self.path = directory / f"etcd.sock:{PORT}"
        self.holding = threading.Event()
        self.withheld = 0  # bytes of answers withheld so far
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(16)
        self._acceptor = threading.Thread(target=self._accept, name="etcd-proxy", daemon=True)
        self._acceptor.start()

    @property
    def endpoint(self) -> Endpoint:
        """What an EtcdPool takes: grpc reads ``unix:DIRECTORY/etcd.sock:2379`` as the path."""
        return Endpoint(f"unix:{self.path.parent / 'etcd.sock'}", PORT)

    def hold(self) -> None:
        self.holding.set()

    def resume(self) -> None:
        """Pass answers again, on new connections: those that lost answers are closed."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.holding.clear()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.resume()
        self._acceptor.join(timeout=10)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        enter_namespace(self.namespace)  # the TCP sockets made below are the sandbox's
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                upstream.connect((self.address, PORT))
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump, args=(source, sink, answers), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if answers and self.holding.is_set():
                    self.withheld += len(data)
                    continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
