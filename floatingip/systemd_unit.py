"""``floatingip systemd-unit``: the shipped unit of ``floatingip agent`` (floatingip/data/
floatingip-agent@.service), with this installation's interpreter in ExecStart; and the
process-wide ``--privilege`` option.

The shipped unit runs the VIP commands with capabilities (ambient CAP_NET_ADMIN CAP_NET_RAW,
NoNewPrivileges=yes).  ``--privilege sudo`` prints the variant for service files whose commands
run through sudo: no capabilities of its own, NoNewPrivileges=no (sudo must gain root), and the
sudo timestamp directories writable; every other hardening line is the same.
"""

from __future__ import annotations

import argparse
import sys

from floatingip import privilege
from floatingip.privilege import Privilege

__all__ = ["UNIT_NAME", "add_privilege_option", "add_systemd_command", "apply_privilege", "unit"]

UNIT_NAME = "floatingip-agent@.service"
_SUDO_COMMENT = (
    "# The VIP commands run through sudo -n (`floatingip sudoers --user floatingip` prints the\n"
    "# lines): sudo must gain root, so no NoNewPrivileges, and its timestamps stay writable.\n"
)
_SUDO_LINES = {
    "AmbientCapabilities=": "",
    "CapabilityBoundingSet=": "",
    "NoNewPrivileges=yes": "NoNewPrivileges=no\nReadWritePaths=-/run/sudo -/var/lib/sudo\n",
}


def unit(mode: Privilege | str = Privilege.CAPABILITIES, python: str = sys.executable) -> str:
    """The unit text for ``mode`` (capabilities or sudo), running ``python -m floatingip``."""
    mode = Privilege(mode)
    if mode not in (Privilege.CAPABILITIES, Privilege.SUDO):
        raise ValueError(f"a unit runs with capabilities or sudo, not {mode}")
    if any(c.isspace() or c in "%$\\\"'" for c in python):
        raise ValueError(f"the interpreter's path {python!r} would need quoting in ExecStart")
    # imported here: importlib.resources imports tempfile and shutil, 3 ms of every command's start
    from importlib import resources

    text = resources.files("floatingip").joinpath("data", UNIT_NAME).read_text(encoding="utf-8")
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith("ExecStart=floatingip "):
            line = line.replace("floatingip ", f"{python} -m floatingip ", 1)
        if mode is Privilege.SUDO:
            line = line.replace("--privilege capabilities", "--privilege sudo")
            if line.startswith("# Least privilege:"):
                line = _SUDO_COMMENT
            elif line.startswith("# passed on to ip,"):
                line = ""
            for start, replacement in _SUDO_LINES.items():
                if line.startswith(start):
                    line = replacement
        lines.append(line)
    return "".join(lines)


def _systemd_unit(args: argparse.Namespace) -> int:
    sys.stdout.write(unit(args.privilege))
    return 0


def add_systemd_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    command = subparsers.add_parser(
        "systemd-unit",
        parents=parents,
        help="print the systemd unit of the agent (floatingip-agent@CLUSTER.service)",
        description=f"Print the shipped {UNIT_NAME}, a template whose instance is the cluster, "
        "with this installation's interpreter in ExecStart: save it as "
        f"/etc/systemd/system/{UNIT_NAME}, then systemctl enable --now floatingip-agent@CLUSTER.",
    )
    command.add_argument(
        "--privilege",
        choices=[Privilege.CAPABILITIES.value, Privilege.SUDO.value],
        default=Privilege.CAPABILITIES.value,
        help="capabilities (default): ambient CAP_NET_ADMIN CAP_NET_RAW, no sudo; "
        "sudo: the commands run through sudo -n",
    )
    command.set_defaults(handler=_systemd_unit)


def add_privilege_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--privilege",
        choices=[Privilege.AUTO.value, Privilege.SUDO.value, Privilege.CAPABILITIES.value],
        default=Privilege.AUTO.value,
        help="how the VIP commands get their privilege: sudo (sudo -n), capabilities (inherited "
        "ambient CAP_NET_ADMIN and CAP_NET_RAW, no sudo), auto (default: capabilities when "
        "both are ambient, else sudo; root needs neither)",
    )


def apply_privilege(args: argparse.Namespace) -> None:
    """Set the mode that ``--privilege`` asked for; the agent and the shell refuse to start in
    capability mode without the capabilities (``check`` reports what is missing instead)."""
    if getattr(args, "command", None) == "systemd-unit":
        return  # its --privilege picks a unit, not this process's mode
    mode = getattr(args, "privilege", None)
    if mode is not None:
        privilege.configure(mode)
        if args.command in ("agent", "shell"):
            privilege.require()
