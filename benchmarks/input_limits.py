"""Hostile inputs: how long each takes to be refused, and what a normal load costs.

Before the limits, a 1.6 MB command.start took 48 s to load, a 100 MB one-line file gave no answer
in 120 s and a 100 MB file of unknown keys built a 7.9M-character error (issue 11, item 7).  Goal:
every input, of any size, refused in well under a second with a short error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import cluster_home, emit, short_mode
from engine_throughput import SEED_SERVICE

from floatingip import FloatingIPError, load_service, load_services
from floatingip.properties import MAX_FILE_SIZE, read_properties
from floatingip.service import MAX_COMMAND_LENGTH


def _timed(call: Callable[[], object]) -> tuple[float, int]:
    """Seconds the call took and the length of the error it raised (0 if none)."""
    started = time.perf_counter()
    try:
        call()
    except FloatingIPError as exc:
        return time.perf_counter() - started, len(str(exc))
    return time.perf_counter() - started, 0


def _write(path: Path, head: bytes, filler: bytes, size: int) -> Path:
    with path.open("wb") as out:
        out.write(head)
        while out.tell() < size:
            out.write(filler[: size - out.tell()])
    path.chmod(0o644)
    return path


def main() -> None:
    big = (10 if short_mode() else 100) << 20
    home = cluster_home(SEED_SERVICE)
    scratch = Path(tempfile.mkdtemp(prefix="floatingip-inputs-"))
    service_dir = home / "conf/cluster/demo/service"
    try:
        header = b"name=master\ncommand.stop=true\n"
        keys = b"".join(b"unknown%d=1\n" % i for i in range(10_000))
        line = _write(scratch / "line.properties", b"a=", b"a" * (1 << 20), big)
        cmd = _write(
            scratch / "cmd.properties", header + b"command.start=", b"x" * 100_000, 1_600_000
        )
        many = _write(scratch / "keys.properties", header, keys, big)
        largest = _write(service_dir / "keys.properties", header, keys, MAX_FILE_SIZE)
        longest = _write(
            service_dir / "long.properties",
            header + b"command.start=echo ",
            b"x" * MAX_COMMAND_LENGTH,
            len(header) + 14 + MAX_COMMAND_LENGTH,
        )
        os.mkfifo(scratch / "fifo")
        cases: dict[str, Callable[[], object]] = {
            f"{big >> 20} MB one-line file": lambda: read_properties(line),
            "1.6 MB command.start": lambda: load_service(cmd),
            f"{big >> 20} MB of unknown keys": lambda: load_service(many),
            "64 KiB of unknown keys (largest file read)": lambda: load_service(largest),
            f"{MAX_COMMAND_LENGTH}-character command (longest accepted)": lambda: load_service(
                longest
            ),
            "a FIFO": lambda: read_properties(scratch / "fifo"),
            "/dev/zero": lambda: read_properties(Path("/dev/zero")),
        }
        results: dict[str, object] = {}
        rows = []
        for name, case in cases.items():
            seconds, error = _timed(case)
            results[name] = {"ms": round(seconds * 1000, 2), "error_chars": error}
            rows.append((f"refuse {name}", f"{seconds * 1000:.1f} ms", f"error {error} chars"))
        largest.unlink()
        longest.unlink()
        loads = 200 if short_mode() else 2000
        started = time.perf_counter()
        for _ in range(loads):
            load_services(home, "demo")
        per_load = (time.perf_counter() - started) / loads
        results["load_services_ms"] = round(per_load * 1000, 3)
        rows.append(("load_services (checked walk, 1 file)", f"{per_load * 1000:.2f} ms", ""))
        emit("input_limits", results, rows)
    finally:
        shutil.rmtree(scratch)
        shutil.rmtree(home)


if __name__ == "__main__":
    main()
