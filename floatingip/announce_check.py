"""``floatingip check``'s announcement lines: what each service announces after a start
(gratuitous ARP, IPv6 neighbour advertisements), or why nothing.  Without an announcement
clients reach a moved VIP only when their ARP cache entry expires (about 50 s measured)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

from floatingip import privilege
from floatingip.checks import PASS, WARN, Check
from floatingip.commands import Executor
from floatingip.service import ServiceDefinition

__all__ = ["check_announcements"]

_CACHE = "clients reach the moved VIP only when their ARP cache entry expires (about a minute)"


def check_announcements(
    services: dict[str, ServiceDefinition], executor: Executor
) -> Iterator[Check]:
    for name, service in sorted(services.items()):
        what = f"{name}: after each start,"
        if service.vip is not None:
            vip = service.vip.on_host(privilege.sudo_on(executor))
            argvs = vip.announce_argvs()
            if argvs:
                yield Check(PASS, f"{what} {'; '.join(map(shlex.join, argvs))}")
            else:
                off = "vip.arp.count=0" if vip.address.version == 4 else "vip.na.count=0"
                yield Check(PASS, f"{what} no announcement: turned off ({off})")
            continue
        announcement = service.announcement
        argv = announcement.argv(privilege.use_sudo_on(executor))
        unannounced = ", ".join(announcement.ipv6)
        if argv is not None:
            also = f" (not {unannounced}: IPv6 is not announced)" if unannounced else ""
            yield Check(PASS, f"{what} gratuitous ARP: {shlex.join(argv)}{also}")
        elif announcement.off:
            yield Check(PASS, f"{what} no gratuitous ARP: {announcement.why_not}")
        else:
            yield Check(
                WARN,
                f"{what} no gratuitous ARP: {announcement.why_not}",
                f"{_CACHE}: {announcement.fix}",
            )
