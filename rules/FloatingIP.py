"""FloatingIP: the master's floating IP follows the master datasource.

The Python mirror of Tungsten's FloatingIP.drl: copy it into the manager's rules directory
(`floatingip install-rules DIR`) and the manager runs service `master`'s command.start when the
master datasource on this host goes ONLINE and its command.stop when it stops being an ONLINE
master.  Nothing runs in MAINTENANCE; leaving MAINTENANCE brings the VIP in line with the facts.
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

MASTER = "master"
# The datasource that should hold the VIP: the ONLINE master on this manager's host.
ONLINE_MASTER_HERE = {"role": "master", "state": "ONLINE", "local": True}

rules = RuleSet("FloatingIP", services=[MASTER])


@rules.rule(
    "FloatingIP: the master on this host goes ONLINE",
    c.ds << datasource(**ONLINE_MASTER_HERE),
    c.policy << active_policy(),
    c.vip << service(MASTER, held=False),
    c.manager << manager_running(),
)
def master_online(ctx: RuleContext) -> None:
    ctx.start(MASTER, datasource=ctx.ds.name)


@rules.rule(
    "FloatingIP: the datasource holding the VIP stops being an ONLINE master",
    c.vip << service(MASTER, held=True),
    c.ds << datasource(name=c.vip.holder, unless=ONLINE_MASTER_HERE),
    c.policy << active_policy(),
)
def master_not_online(ctx: RuleContext) -> None:
    ctx.stop(MASTER, datasource=ctx.ds.name)


@rules.rule(
    "FloatingIP: failsafe, the manager stops while holding the VIP",
    c.manager << manager_stopping(),
    c.policy << active_policy(),
    c.vip << service(MASTER, held=True),
)
def failsafe(ctx: RuleContext) -> None:
    ctx.stop(MASTER, datasource=ctx.vip.holder or None)
