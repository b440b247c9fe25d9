"""How the privileged VIP commands (``ip addr add/del``, ``arping``, the duplicate address probe)
get their privilege: as root, through ``sudo -n``, or with capabilities inherited from this
process.

Capability mode is what the shipped systemd unit does (``AmbientCapabilities=CAP_NET_ADMIN
CAP_NET_RAW``): an unprivileged account whose *ambient* set holds both capabilities passes them
to every program it runs that has no file capabilities of its own (capabilities(7)), so the
commands run without sudo and no sudoers line is needed.  Capabilities only in the effective set
are not enough: a program exec'd from here would start without them.

The mode is process-wide, as the capabilities are: ``--privilege`` sets it (default ``auto``).
It is this machine's: a command that an executor runs on another host as some account (ssh) gets
its privilege there, which the executor tells (``runs_as_root``, :func:`use_sudo_on`).  A service
file's ``vip.sudo=true`` or ``false`` still overrides both for that service.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from floatingip.errors import UsageError
from floatingip.vocabulary import Word

__all__ = [
    "NEEDED",
    "Capabilities",
    "Privilege",
    "configure",
    "configured",
    "current",
    "missing_capabilities",
    "parse_status",
    "read_capabilities",
    "require",
    "sudo_on",
    "use_sudo",
    "use_sudo_on",
]

# capability(7) numbers: what adding an address (NET_ADMIN) and ARP on a raw socket (NET_RAW) need
NEEDED = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13}


class Privilege(Word):
    """``--privilege``: how the VIP commands get theirs."""

    AUTO = "auto"  # root as root; capabilities if both are ambient; else sudo
    SUDO = "sudo"  # sudo -n (unless root)
    CAPABILITIES = "capabilities"  # inherited ambient capabilities, no sudo
    ROOT = "root"  # only ever resolved, not asked for: this process is root


@dataclass(frozen=True)
class Capabilities:
    """A process's capability sets (bit masks) and whether it has no_new_privs set."""

    effective: int
    ambient: int
    no_new_privs: bool = False

    def has(self, name: str, *, ambient: bool) -> bool:
        mask = 1 << NEEDED[name]
        return bool((self.ambient if ambient else self.effective) & mask)


def read_capabilities(status: Path = Path("/proc/self/status")) -> Capabilities:
    """This process's capabilities as the kernel reports them (``CapEff``, ``CapAmb``)."""
    return parse_status(status.read_text())


def parse_status(text: str) -> Capabilities:
    """The capabilities in the text of a ``/proc/PID/status`` file."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return Capabilities(
        effective=int(fields.get("CapEff", "0"), 16),
        ambient=int(fields.get("CapAmb", "0"), 16),
        no_new_privs=fields.get("NoNewPrivs", "0") == "1",
    )


def missing_capabilities(caps: Capabilities) -> list[str]:
    """What keeps capability mode from working: each needed capability not in the effective set
    (this process) or not in the ambient set (the commands it runs)."""
    missing = []
    for name in NEEDED:
        if not caps.has(name, ambient=False):
            missing.append(f"{name} is not in the effective set")
        elif not caps.has(name, ambient=True):
            missing.append(f"{name} is not in the ambient set (the commands would not inherit it)")
    return missing


_configured = Privilege.AUTO


def configured() -> Privilege:
    """The mode asked for (``--privilege``; AUTO by default)."""
    return _configured


def configure(mode: Privilege | str) -> None:
    """Set the process-wide mode (``--privilege``); ValueError for an unknown one."""
    global _configured
    mode = Privilege(mode)
    if mode is Privilege.ROOT:
        raise ValueError("privilege mode 'root' is not asked for: it is what root resolves to")
    _configured = mode


def current() -> Privilege:
    """The mode in force: ROOT, SUDO or CAPABILITIES."""
    return _resolve(os.geteuid(), _configured)


@functools.lru_cache(maxsize=8)
def _resolve(euid: int, configured: Privilege) -> Privilege:
    # Read once per account (a process that becomes another account, as a forked child that
    # drops root does, loses its capabilities with it): the VIP's argv is built on every change.
    if euid == 0:
        return Privilege.ROOT
    if configured is not Privilege.AUTO:
        return configured
    try:
        caps = read_capabilities()
    except OSError:
        return Privilege.SUDO
    return Privilege.SUDO if missing_capabilities(caps) else Privilege.CAPABILITIES


def use_sudo() -> bool:
    """Whether the VIP commands go through ``sudo -n`` (for ``vip.sudo=auto``)."""
    return current() is Privilege.SUDO


def sudo_on(executor: object) -> bool | None:
    """Whether commands run through ``executor`` need ``sudo -n`` on its host, if the executor
    says (``runs_as_root``: an ssh login on another host); None: this process decides."""
    says = getattr(executor, "runs_as_root", None)
    return not says if isinstance(says, bool) else None


def use_sudo_on(executor: object) -> bool:
    """Whether the VIP commands run through ``executor`` go through ``sudo -n`` (vip.sudo=auto)."""
    says = sudo_on(executor)
    return use_sudo() if says is None else says


def require() -> None:
    """Refuse to start in capability mode without the capabilities (UsageError naming them),
    instead of failing at the first failover."""
    if current() is not Privilege.CAPABILITIES:
        return
    missing = missing_capabilities(read_capabilities())
    if missing:
        raise UsageError(
            "--privilege capabilities, but " + "; ".join(missing) + ": run with "
            "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW (systemd) or "
            "setpriv --inh-caps=+net_admin,+net_raw --ambient-caps=+net_admin,+net_raw"
        )
