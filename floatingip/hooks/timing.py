"""Where a hook's time goes, for its ``-v`` log: one line that says when the tool started it and
when each step ended after that (``called`` is the moment the tool started the command: sudo's
start when the hook runs through sudo, else this process's).

Every time is on ``time.monotonic()``'s clock (CLOCK_MONOTONIC: one clock for the whole machine,
namespaces included), so a benchmark can put the line beside its own measurements.  A process's
start comes from /proc (the kernel's tick, 10 ms on Debian): CLOCK_BOOTTIME, which is
CLOCK_MONOTONIC plus the time the machine was suspended.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from floatingip.commands import CommandResult
from floatingip.hooks.order import process_start
from floatingip.results import Event
from floatingip.vocabulary import EventKind

__all__ = ["Timeline", "started"]


def started(pid: int | str = "self") -> float | None:
    """When process ``pid`` started, on time.monotonic()'s clock; None if /proc cannot say."""
    ticks = process_start(pid)
    if ticks is None:
        return None
    boot_offset = time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic()
    return ticks / os.sysconf("SC_CLK_TCK") - boot_offset


def _called() -> float | None:
    """When the tool started this hook: the outermost sudo above this process, else itself."""
    when, pid = started(), os.getppid()
    for _ in range(3):  # sudo, and its monitor process (Defaults use_pty)
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "sudo":
                break
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        when, pid = started(pid) or when, parent
    return when


class Timeline:
    """The steps of one hook call, marked as they end."""

    def __init__(self) -> None:
        self.called = _called()
        self.process = started()
        self._marks: list[tuple[str, float]] = []

    def mark(self, step: str) -> None:
        self._marks.append((step, time.monotonic()))

    def commands(self, events: Sequence[Event]) -> None:
        """The commands in ``events`` (a manager's history), each marked when it ended, with
        the time each of its steps took (a probe, the add, the verification).  A failure
        repeated (a start refused while another host has the VIP) is marked the first time and
        the last, with the count between."""
        wall_offset = time.time() - time.monotonic()
        marks: list[tuple[str, float]] = []
        last, repeats = "", 0
        for event in events:
            outcome = event.outcome
            if event.kind is not EventKind.COMMAND or outcome is None:
                continue
            steps = ", ".join(f"{_word(step)} {step.duration:.3f} s" for step in outcome.steps)
            state = "ok" if outcome.ok else "refused" if outcome.result is None else "failed"
            kind = f"{outcome.service} {outcome.action} {state}"
            when = event.time - wall_offset
            if kind == last and state != "ok":
                repeats += 1
                again = (f"{kind} again, {repeats} times (last: {steps or 'no command'})", when)
                marks[-1:] = [again] if repeats > 1 else [marks[-1], again]
                continue
            marks.append((f"{kind} ({steps or 'no command'})", when))
            last, repeats = kind, 0
        self._marks = sorted(self._marks + marks, key=lambda mark: mark[1])

    def line(self) -> str:
        """``timing: called 1234.567 (monotonic s); process +0.012; ...; closed +0.480``."""
        origin = self.called or self.process or (self._marks[0][1] if self._marks else 0.0)
        parts = [f"timing: called {origin:.3f} (monotonic s)"]
        if self.process is not None:
            parts.append(f"process +{max(0.0, self.process - origin):.3f}")
        parts += [f"{step} +{when - origin:.3f}" for step, when in self._marks]
        return "; ".join(parts)


def _word(step: CommandResult) -> str:
    """What a step was, in a few words: the duplicate address probe, or its program and verbs
    (``ip addr add``)."""
    argv = [word for word in step.argv if word not in ("sudo", "-n")]
    if any(word.endswith("dad.py") for word in argv):
        return "advertise" if "--advertise" in argv else "probe"
    if not argv:
        return "?"
    verbs = [word for word in argv[1:] if not word.startswith("-")][:2]
    return " ".join([os.path.basename(argv[0]), *verbs])
