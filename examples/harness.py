"""Drive floatingip the way an embedding cluster manager does: through the Python API.

The same session as the seed's cctrl transcript and `make demo`: db1 (master) goes ONLINE and takes
the VIP, goes OFFLINE and drops it, then the master role switches to db2.  By default commands are
only recorded (RecordingExecutor), so this runs anywhere:

    python examples/harness.py                       # prints what would run
    python examples/harness.py --cluster-home DIR --cluster NAME --execute   # really runs them
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import floatingip

EXAMPLE_HOME = Path(__file__).resolve().parent / "cluster-home"


def report(event: floatingip.Event) -> None:
    """A listener: what a cluster manager would forward to its own log or monitoring."""
    if event.kind == "command" and event.outcome is not None:
        status = "ok" if event.ok else f"FAILED: {event.outcome.error}"
        print(f"  [{event.outcome.host}] {shlex.join(event.outcome.argv)} -> {status}")
    elif not event.ok:
        print(f"  error: {event.message}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster-home", type=Path, default=EXAMPLE_HOME)
    parser.add_argument("--cluster", default="demo")
    parser.add_argument("--host", default="db1", help="the host this manager runs on")
    parser.add_argument("--execute", action="store_true", help="run the commands for real")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    executor = floatingip.LocalExecutor() if args.execute else floatingip.RecordingExecutor()
    try:
        manager = floatingip.Manager.from_cluster_home(
            args.cluster_home, args.cluster, host=args.host, executor=executor
        )
    except floatingip.FloatingIPError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1

    manager.add_listener(report)
    failed = False
    with manager:
        for name, state in [("db2", "ONLINE"), ("db1", "ONLINE"), ("db1", "OFFLINE")]:
            result = manager.update_datasource(name, state=state)
            print(f"DataSource '{name}' is now {state}")
            failed |= not result.ok
        switched = manager.switch("db2")
        print(f"SWITCH TO '{switched.new_master}' {'WAS SUCCESSFUL' if switched.ok else 'FAILED'}")
        failed |= not switched.ok
        held = ", ".join(f"{service} (for {ds})" for service, ds in manager.held.items())
        print(f"held on {manager.host}: {held or 'nothing'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
