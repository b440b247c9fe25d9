"""``floatingip services``: each service's commands and the exact argv they run."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from floatingip import privilege
from floatingip.service import ACTIONS, ServiceDefinition

__all__ = ["print_services"]


def print_services(services: Mapping[str, ServiceDefinition], cluster: str) -> int:
    if not services:
        print(f"cluster {cluster!r}: no service definitions")
        return 0
    for service in services.values():
        print(f"service {service.name!r} ({service.path}), timeout {service.timeout:g}s")
        if service.vip is not None:
            vip = service.vip
            print(
                f"  built-in VIP {vip.spelled} on {vip.interface} "
                f"(label {vip.label or '-'}, backend {vip.backend}, "
                f"{vip.arp_count} gratuitous ARP, {vip.na_count} neighbour advertisements, "
                f"sudo {vip.sudo})"
            )
            for action, argv in service.planned_argvs():
                print(f"  {action:<8} runs: {shlex.join(argv)}")
            continue
        for action in ACTIONS:
            command = service.commands[action]
            if command is None:
                print(f"  {action:<8} (not defined)")
                continue
            print(f"  {action:<8} {command}")
            print(f"  {'':<8} argv: {list(service.argv(action))}")
            print(f"  {'':<8} runs: {shlex.join(service.argv(action))}")
        announcement = service.announcement  # classic services: the gratuitous ARP after start
        arping = announcement.argv(privilege.use_sudo())
        then = shlex.join(arping) if arping is not None else f"none, {announcement.why_not}"
        print(f"  after each start, gratuitous ARP: {then}")
    return 0
