"""A cctrl-like shell over a Manager: the seed procedure's step 4, interactive or scripted.

Interactive on a terminal (readline history and completion); otherwise it reads one command a
line from stdin, echoes each after the prompt as cctrl does, and its exit status says whether any
command failed.
"""

from __future__ import annotations

import cmd
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import IO

from floatingip.datasource import PolicyMode, State
from floatingip.errors import FloatingIPError
from floatingip.results import ChangeResult, CommandOutcome, Event
from floatingip.shell_backend import ShellBackend
from floatingip.shell_hosts import HostCommands
from floatingip.vocabulary import Action, EventKind

__all__ = ["Shell", "interrupts_for_this_thread_only"]

logger = logging.getLogger(__name__)

HISTORY_FILE = Path("~/.floatingip_history")
_VERBS = ("online", "offline", "fail", "shun", "recover", "welcome", "slave", "master")
_ACTIONS = (Action.STATUS, Action.START, Action.STOP, Action.RESTART)  # as `help` lists them


def _block_interrupts(block: bool) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK if block else signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def interrupts_for_this_thread_only() -> Iterator[None]:
    """Threads started inside (the manager's) never receive Ctrl-C.

    The kernel hands SIGINT to any thread that does not block it; one that lands on a manager
    thread while the main thread waits in readline is noticed only at the next key press.
    """
    _block_interrupts(True)
    try:
        yield
    finally:
        _block_interrupts(False)


class Shell(HostCommands, cmd.Cmd):
    """The shell over a backend (floatingip.shell_backend); ``failures`` counts failed commands."""

    def __init__(self, manager: ShellBackend, *, stdout: IO[str]) -> None:
        super().__init__(stdout=stdout)
        self.manager = manager
        self.prompt = f"[LOGICAL] /cluster/{manager.cluster}/> "
        self.failures = 0
        self.doc_header = "Commands (type help <command>):"
        self._readline: ModuleType | None = None

    def banner(self, where: str = "") -> str:  # where: "host db1" unless given
        return (
            f"floatingip shell: cluster {self.manager.cluster}, "
            f"{where or 'host ' + self.manager.host}. "
            "Type 'help' for the commands, 'help <command>' for one; "
            "Ctrl-C cancels the line, Ctrl-D or 'exit' leaves."
        )

    # -- output --------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.stdout.write(text + "\n")

    def _say_table(self, rows: Sequence[tuple[str, ...]]) -> None:
        widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
        for row in rows:
            self._say("  " + "  ".join(map(str.ljust, row, widths)).rstrip())

    def _error(self, text: str) -> None:
        self.failures += 1
        for line in text.splitlines() or [""]:
            self._say(f"ERROR: {line}")

    def _report(self, result: ChangeResult) -> bool:
        for outcome in result.commands:
            self._report_command(outcome)
        for message in [*map(str, result.rule_errors), *map(str, result.engine_errors)]:
            self._error(message)
        return result.ok

    def _report_command(self, outcome: CommandOutcome) -> None:
        if not outcome.ok:
            self._error(f"{outcome.service} {outcome.action} on {outcome.host}: {outcome.error}")

    def _run(self, action: Callable[[], None]) -> None:
        try:
            action()
        except FloatingIPError as exc:
            self._error(str(exc))

    # -- a shell on a host where nothing of this cluster runs -------------------------------

    def _hosts(self) -> str:
        return " or ".join(repr(host) for host in sorted(self.manager.hosts))

    def _nothing_runs_here(self) -> bool:
        """True when no datasource is on a host this manager acts for (a wrong --host)."""
        datasources = self.manager.datasources.values()
        return bool(datasources) and all(ds.host not in self.manager.hosts for ds in datasources)

    def warn_about_host(self) -> None:
        """Say at start when no command of this cluster can run here: the host defaults to the
        machine's name, and a shell on the wrong host would otherwise print nothing at all."""
        if self._nothing_runs_here():
            hosts = sorted({ds.host for ds in self.manager.datasources.values()})
            self._say(
                f"WARNING: no datasource of cluster {self.manager.cluster} is on host "
                f"{self._hosts()}; commands for other hosts are not run here; "
                f"use --host ({', '.join(hosts)})"
            )

    def _warn_if_ran_elsewhere(self, name: str, results: Iterable[ChangeResult]) -> None:
        if self._nothing_runs_here() and not any(result.commands for result in results):
            host = self.manager.datasources[name].host
            self._say(
                f"WARNING: datasource {name} is on host {host!r}, not on {self._hosts()}: "
                f"commands for other hosts are not run here; use --host {host}"
            )

    # -- cmd.Cmd plumbing ------------------------------------------------------------------

    def get_names(self) -> list[str]:
        # do_EOF is Ctrl-D: not a command to list in help or to complete
        return [name for name in super().get_names() if name != "do_EOF"]

    def completenames(self, text: str, *ignored: object) -> list[str]:
        # a trailing space, so that the next tab completes the command's first argument
        return [name + " " for name in super().completenames(text, *ignored)]

    def precmd(self, line: str) -> str:
        # Ctrl-C waits until the command is done (stopping a change halfway could leave a VIP on
        # two hosts, or none), and threads started meanwhile (gratuitous ARP) never receive it.
        _block_interrupts(True)
        self._tidy_history(line)
        return line

    def postcmd(self, stop: bool, line: str) -> bool:
        _block_interrupts(False)  # a Ctrl-C typed meanwhile now cancels the next line
        return stop

    def _tidy_history(self, line: str) -> None:
        """Keep the line as meant, without the space that completion left at its end."""
        readline = self._readline
        if readline is None or line == line.strip():
            return
        last = readline.get_current_history_length()
        if last == 0 or readline.get_history_item(last) != line:
            return
        if line.strip():
            readline.replace_history_item(last - 1, line.strip())
        else:
            readline.remove_history_item(last - 1)

    def emptyline(self) -> bool:
        return False

    def default(self, line: str) -> None:
        if not line.lstrip().startswith("#"):
            self._error(f"unknown command {line.split()[0]!r}; type 'help' for the commands")

    def run_script(self, lines: Iterable[str]) -> None:
        """Run commands from a non-terminal, echoing each after the prompt as cctrl does."""
        self.warn_about_host()
        for raw in lines:
            line = raw.rstrip("\r\n")
            self._say(f"{self.prompt}{line}")
            stop = self.onecmd(line)
            self.stdout.flush()  # whoever feeds a pipe waits for each answer
            if stop:
                break

    def run_interactive(self) -> None:
        try:
            import readline
        except ImportError:  # pragma: no cover - readline ships with CPython on Linux
            readline = None  # type: ignore[assignment]
        self._readline = readline
        history = HISTORY_FILE.expanduser()
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.read_history_file(history)
        self._say(self.banner())
        self.warn_about_host()
        # Ctrl-C cancels the line even if this process inherited SIGINT ignored (started as a
        # background job, `cmd &`): the operator at this terminal pressed it.
        restore_sigint = None
        if threading.current_thread() is threading.main_thread():
            restore_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            while True:
                try:
                    self.cmdloop()
                    break
                except KeyboardInterrupt:  # cancel the line being typed, as bash and cctrl do
                    self._say("^C")
        finally:
            _block_interrupts(False)
            if restore_sigint is not None:
                signal.signal(signal.SIGINT, restore_sigint)
            if readline is not None:
                try:
                    readline.set_history_length(1000)
                    readline.write_history_file(history)
                except OSError:
                    logger.debug("cannot write %s", history)

    # -- commands --------------------------------------------------------------------------

    def do_datasource(self, arg: str) -> bool:
        """datasource <name> online|offline|fail|shun|recover|welcome|slave|master"""
        parts = arg.split()
        if len(parts) != 2 or parts[1].lower() not in _VERBS:
            self._error(f"usage: datasource <name> {'|'.join(_VERBS)}")
            return False
        name, verb = parts[0], parts[1].lower()
        self._run(lambda: self._datasource(name, verb))
        return False

    def _datasource(self, name: str, verb: str) -> None:
        manager = self.manager
        if verb in ("slave", "master"):
            result = manager.update_datasource(name, role=verb)
            self._say(f"DataSource '{name}' is now a {verb}")
        elif verb in ("online", "offline"):
            result = manager.update_datasource(name, state=verb)
            self._say(f"DataSource '{name}' is now {verb.upper()}")
        elif verb in ("fail", "shun"):
            state = State.FAILED if verb == "fail" else State.SHUNNED
            result = manager.update_datasource(name, state=state)
            self._say(f"DataSource '{name}' set to {state}")
        elif verb == "welcome":
            result = manager.welcome(name)
            self._say(f"DataSource '{name}' is now ONLINE")
        else:  # recover: back ONLINE, as a slave if another datasource is the master
            was = manager.datasource(name).role
            result = manager.recover(name)
            demoted = manager.datasource(name).role is not was
            self._say(f"DataSource '{name}' is now ONLINE{' as a slave' if demoted else ''}")
        self._report(result)
        self._warn_if_ran_elsewhere(name, [result])

    def complete_datasource(self, text: str, line: str, begin: int, end: int) -> list[str]:
        words = line[:begin].split()
        choices = list(self.manager.datasources) if len(words) == 1 else list(_VERBS)
        return _matches(text, choices)

    def do_switch(self, arg: str) -> bool:
        """switch [to <name>]: make <name> (default: the first ONLINE slave) the master"""
        parts = arg.split()
        if parts and (len(parts) != 2 or parts[0].lower() != "to"):
            self._error("usage: switch [to <name>]")
            return False
        target = parts[1] if parts else None
        self._run(lambda: self._switch(target))
        return False

    def _switch(self, target: str | None) -> None:
        target = self.manager.switch_target(target)
        self._say(f"SELECTED SLAVE: '{target}'")

        def show_step(event: Event) -> None:
            if event.kind is EventKind.DATASOURCE:
                self._say(f"  {event.message}")

        self.manager.add_listener(show_step)
        try:
            result = self.manager.switch(target)
        finally:
            self.manager.remove_listener(show_step)
        for step in result.steps:
            self._report(step)
        if result.ok:
            self._say(f"SWITCH TO '{result.new_master}' WAS SUCCESSFUL")
        else:
            self._error(f"SWITCH TO '{result.new_master}' FAILED")
        self._warn_if_ran_elsewhere(result.new_master, result.steps)

    def complete_switch(self, text: str, line: str, begin: int, end: int) -> list[str]:
        words = line[:begin].split()
        choices = ["to"] if len(words) == 1 else list(self.manager.datasources)
        return _matches(text, choices)

    def do_ls(self, arg: str) -> bool:
        """ls: the datasources (host, role, state), the policy, and which host holds which VIP"""
        manager = self.manager
        self._say(f"COORDINATOR[{manager.host}:{manager.policy}]")
        self._say("DATASOURCES:")
        rows = [("NAME", "HOST", "ROLE", "STATE", "HOLDS")]
        held = manager.held
        for name, ds in sorted(manager.datasources.items()):
            holds = ",".join(sorted(service for service, holder in held.items() if holder == name))
            rows.append((name, ds.host, str(ds.role), str(ds.state), holds or "-"))
        self._say_table(rows)
        self._say("SERVICES:")
        problems = manager.problems
        for name in sorted(manager.services):
            holder = held.get(name)
            if holder is None:
                where = "not held here"
            else:
                datasource = manager.datasources.get(holder)
                where = f"held on {datasource.host if datasource else '?'} (for {holder})"
            vip = manager.services[name].vip  # "192.0.2.22/24, 2001:db8::22/64 on eth0"
            self._say(f"  {name}: {where}" + (f"; vip {vip}" if vip is not None else ""))
            if name in problems:
                self._say(f"    last error: {problems[name]}")
        if manager.repairs:
            self._say(f"DRIFT REPAIRED: {manager.repairs} time(s) (see the log)")
        return False

    def do_set(self, arg: str) -> bool:
        """set policy automatic|manual|maintenance"""
        parts = arg.split()
        if len(parts) != 2 or parts[0].lower() != "policy":
            self._error("usage: set policy automatic|manual|maintenance")
            return False
        self._run(lambda: self._set_policy(parts[1]))
        return False

    def _set_policy(self, mode: str) -> None:
        result = self.manager.set_policy(mode)
        self._say(f"policy mode is now {self.manager.policy}")
        self._report(result)

    def complete_set(self, text: str, line: str, begin: int, end: int) -> list[str]:
        words = line[:begin].split()
        choices = ["policy"] if len(words) == 1 else [mode.value.lower() for mode in PolicyMode]
        return _matches(text, choices)

    def do_service(self, arg: str) -> bool:
        """service <name> status|start|stop|restart [on <host>]: run it and show its output"""
        parts = arg.split()
        host = None
        if len(parts) == 4 and parts[2].lower() == "on":
            host = parts[3]
            parts = parts[:2]
        if len(parts) != 2 or parts[1].lower() not in _ACTIONS:
            self._error("usage: service <name> status|start|stop|restart [on <host>]")
            return False
        self._run(lambda: self._service(parts[0], parts[1].lower(), host))
        return False

    def _service(self, name: str, action: str, host: str | None) -> None:
        outcome = self.manager.run_service(name, action, host=host)
        if outcome.result is not None:
            for stream in (outcome.result.stdout, outcome.result.stderr):
                if stream:
                    self.stdout.write(stream if stream.endswith("\n") else stream + "\n")
        for note in outcome.notes:  # "192.0.2.22 is held", "already present", ...
            self._say(note)
        if outcome.ok:
            self._say(f"service '{name}' {action} on {outcome.host}: OK")
        self._report_command(outcome)  # its error, if it failed

    def complete_service(self, text: str, line: str, begin: int, end: int) -> list[str]:
        choices: list[list[str]] = [  # service <name> <action> on <host>
            list(self.manager.services),
            list(_ACTIONS),
            ["on"],
            sorted(self.manager.hosts),
        ]
        words = len(line[:begin].split())
        return _matches(text, choices[words - 1]) if 1 <= words <= len(choices) else []

    def do_exit(self, arg: str) -> bool:
        """exit: leave the shell"""
        return True

    do_quit = do_exit

    def do_EOF(self, arg: str) -> bool:
        self._say("")
        return True


def _matches(text: str, choices: Iterable[str]) -> list[str]:
    # Python's readline appends nothing to a unique completion: add the space ourselves
    return [choice + " " for choice in choices if choice.startswith(text)]


def is_terminal(stream: IO[str]) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False
