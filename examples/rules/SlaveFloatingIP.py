"""SlaveFloatingIP: a read-only VIP for reporting clients, held by an ONLINE slave on this host.

An example of extending floatingip with your own rules: drop this file into the manager's rules
directory next to FloatingIP.py and define service `slave` (service/slave.properties) with the
commands that add and remove the read VIP.  When a slave on this host goes ONLINE it takes the
read VIP; when that slave goes offline, fails, or is promoted to master, it gives it up, so that
reporting clients never land on the master.
"""

from __future__ import annotations

from floatingip.rules import (
    RuleContext,
    RuleSet,
    active_policy,
    c,
    datasource,
    manager_running,
    manager_stopping,
    service,
)

READ_VIP = "slave"
ONLINE_SLAVE_HERE = {"role": "slave", "state": "ONLINE", "local": True}

rules = RuleSet("SlaveFloatingIP", services=[READ_VIP])


@rules.rule(
    "SlaveFloatingIP: a slave on this host is ONLINE and nobody here holds the read VIP",
    c.slave << datasource(**ONLINE_SLAVE_HERE),
    c.read_vip << service(READ_VIP, held=False),
    c.policy << active_policy(),
    c.manager << manager_running(),
)
def take_read_vip(ctx: RuleContext) -> None:
    ctx.start(READ_VIP, datasource=ctx.slave.name)


@rules.rule(
    "SlaveFloatingIP: the slave holding the read VIP is no longer an ONLINE slave",
    c.read_vip << service(READ_VIP, held=True),
    c.holder << datasource(name=c.read_vip.holder, unless={"role": "slave", "state": "ONLINE"}),
    c.policy << active_policy(),
)
def give_up_read_vip(ctx: RuleContext) -> None:
    ctx.log.info("%s is now %s %s", ctx.holder.name, ctx.holder.role, ctx.holder.state)
    ctx.stop(READ_VIP, datasource=ctx.holder.name)


@rules.rule(
    "SlaveFloatingIP: failsafe, the manager stops while holding the read VIP",
    c.manager << manager_stopping(),
    c.read_vip << service(READ_VIP, held=True),
    c.policy << active_policy(),
)
def release_on_stop(ctx: RuleContext) -> None:
    ctx.stop(READ_VIP)
