"""floatingip.datasource: vocabulary and datasource files."""

from __future__ import annotations

from pathlib import Path

import pytest

from floatingip import (
    DataSource,
    DataSourceError,
    FloatingIPError,
    PolicyMode,
    Role,
    State,
    load_datasources,
)
from floatingip.datasource import parse_policy, parse_role, parse_state
from floatingip.errors import DataSourceDefinitionError
from tests.conftest import write_service


def test_names_parse_in_any_case() -> None:
    assert parse_role("Master") is Role.MASTER
    assert parse_state("online") is State.ONLINE
    assert parse_policy(" maintenance ") is PolicyMode.MAINTENANCE
    assert parse_state(State.FAILED) is State.FAILED


@pytest.mark.parametrize(
    ("parse", "value", "expected"),
    [
        (parse_role, "primary", "unknown role 'primary'; expected one of: master, slave"),
        (parse_state, "UP", "unknown state 'UP'; expected one of: ONLINE, OFFLINE"),
        (parse_policy, "auto", "unknown policy mode 'auto'; expected one of: AUTOMATIC"),
        (parse_state, None, "unknown state None"),
    ],
)
def test_unknown_names_are_clear_errors(parse: object, value: object, expected: str) -> None:
    with pytest.raises(DataSourceError) as caught:
        parse(value)  # type: ignore[operator]
    assert isinstance(caught.value, FloatingIPError)
    assert str(caught.value).startswith(expected)


def test_datasource_defaults_and_validation() -> None:
    ds = DataSource(cluster="demo", name="db1", host="db1", role="master")  # type: ignore[arg-type]
    assert ds.role is Role.MASTER and ds.state is State.OFFLINE
    assert not ds.is_online_master
    assert ds.changed(state=State.ONLINE).is_online_master
    with pytest.raises(DataSourceError, match="datasource name 'db1;rm -rf /' is not valid"):
        DataSource(cluster="demo", name="db1;rm -rf /", host="db1", role=Role.MASTER)
    with pytest.raises(DataSourceError, match=r"host name '\$\(reboot\)' is not valid"):
        DataSource(cluster="demo", name="db1", host="$(reboot)", role=Role.MASTER)


def test_datasource_files_load_with_host_defaulting_to_name(demo_home: Path) -> None:
    datasources = load_datasources(demo_home, "demo")
    assert sorted(datasources) == ["db1", "db2"]
    assert datasources["db1"].host == "db1" and datasources["db1"].role is Role.MASTER
    assert datasources["db2"].role is Role.SLAVE and datasources["db2"].state is State.OFFLINE


def test_no_datasource_directory_means_none(cluster_home: Path) -> None:
    assert load_datasources(cluster_home, "demo") == {}


def test_bad_datasource_files_report_every_problem(service_dir: Path) -> None:
    directory = service_dir.parent / "datasource"
    directory.mkdir(mode=0o755)
    write_service(directory, "a.properties", "name=db1\nrole=primary\nhots=x\n")
    write_service(directory, "b.properties", "host=db2\n")
    write_service(directory, "c.properties", "name=db1\nrole=slave\n")
    write_service(directory, "d.properties", "name=db4\nrole=slave\n", mode=0o666)
    with pytest.raises(DataSourceDefinitionError) as caught:
        load_datasources(service_dir.parent.parent.parent.parent, "demo")
    message = str(caught.value)
    assert "a.properties:2: unknown role 'primary'" in message
    assert "a.properties:3: unknown key 'hots' (did you mean 'host'?)" in message
    assert "b.properties: missing required key 'name'" in message
    assert "b.properties: missing required key 'role'" in message
    assert "d.properties: datasource file is writable by group or others" in message
