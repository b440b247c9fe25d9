"""`floatingip status`'s verdicts, as a pure function of where the facts put a VIP and where it
was found; and the options it refuses."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from floatingip.cli import main
from floatingip.datasource import DataSource, Role, State
from floatingip.status import EXIT_CODES, ClusterStatus, ServiceStatus, expected_master, verdict
from tests.conftest import EXAMPLE_CLUSTER_HOME


def judged(
    expected: str | None, held: list[str], unreadable: Sequence[str] = (), **kw: object
) -> str:
    status = ServiceStatus(
        service="vip", expected_host=expected, expected_datasource=expected,
        held_on=held, unreadable=list(unreadable),
    )  # fmt: skip
    verdict(status, **kw)  # type: ignore[arg-type]
    return status.verdict


@pytest.mark.parametrize(
    ("expected", "held", "unreadable", "word"),
    [
        ("db1", ["db1"], [], "ok"),
        (None, [], [], "ok"),
        ("db1", [], [], "missing"),
        ("db1", ["db2"], [], "misplaced"),
        ("db1", ["db1", "db2"], [], "misplaced"),
        (None, ["db2"], [], "misplaced"),
        ("db1", [], ["db1"], "unknown"),
        ("db1", ["db1"], ["db2"], "unknown"),
        ("db1", ["db2"], ["db1"], "misplaced"),  # worse than unknown
    ],
)
def test_verdicts(expected: str | None, held: list[str], unreadable: list[str], word: str) -> None:
    assert judged(expected, held, unreadable) == word


def test_a_master_on_a_host_not_probed_is_not_called_missing() -> None:
    assert judged("db3", [], seen=["db1", "db2"]) == "ok"
    assert judged("db3", ["db1"], seen=["db1", "db2"]) == "misplaced"


def test_the_worst_service_decides_the_exit_code() -> None:
    def service(word: str) -> ServiceStatus:
        return ServiceStatus(
            service=word, expected_host=None, expected_datasource=None, verdict=word
        )

    report = ClusterStatus(
        cluster="c", source="local", policy="AUTOMATIC", probed=[],
        services=[service("unknown"), service("missing"), service("ok")],
    )  # fmt: skip
    assert report.verdict == "missing" and report.exit_code == EXIT_CODES["missing"] == 4
    report.services.append(service("misplaced"))
    assert report.exit_code == 3
    assert ClusterStatus(cluster="c", source="", policy="", probed=[], services=[]).exit_code == 0


def test_two_online_masters_put_the_vip_nowhere_and_say_why() -> None:
    online = [DataSource("c", n, n, Role.MASTER, State.ONLINE) for n in ("db1", "db2")]
    assert expected_master(online) == (None, "more than one ONLINE master (db1, db2)")


def test_local_options_are_refused_with_etcd(capsys: pytest.CaptureFixture[str]) -> None:
    home = str(EXAMPLE_CLUSTER_HOME)
    argv = [
        "status",
        "--cluster-home",
        home,
        "--cluster",
        "demo",
        "--etcd",
        "http://192.0.2.1:2379",
    ]
    assert main([*argv, "--state", "db1=ONLINE"]) == 1
    assert "--state: for a local status; with --etcd etcd says" in capsys.readouterr().err


def test_a_state_for_an_unknown_datasource_names_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = str(EXAMPLE_CLUSTER_HOME)
    assert (
        main(["status", "--cluster-home", home, "--cluster", "demo", "--state", "db9=ONLINE"]) == 1
    )
    assert "--state takes NAME=VALUE for a datasource (db1, db2): 'db9=ONLINE'" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--patroni-scope", "demo"], "--patroni-scope, --patroni-namespace: Patroni's keys are "
         "read with --etcd"),
        (["--etcd", "http://192.0.2.1:2379", "--patroni-namespace", "/service"],
         "--patroni-namespace needs --patroni-scope"),
        (["--etcd", "http://192.0.2.1:2379", "--patroni-scope", "a/b"],
         "Patroni scope 'a/b' is not valid (has '/')"),
    ],
)  # fmt: skip
def test_patroni_options_are_checked_before_etcd_is_asked(
    capsys: pytest.CaptureFixture[str], options: list[str], error: str
) -> None:
    home = str(EXAMPLE_CLUSTER_HOME)
    assert main(["status", "--cluster-home", home, "--cluster", "demo", *options]) == 1
    assert f"floatingip: {error}\n" == capsys.readouterr().err
