"""Security: no shell anywhere, hostile names refused, and a fuzzed properties reader that only
ever answers with a ServiceDefinitionError."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floatingip import (
    DataSourceError,
    Manager,
    RecordingExecutor,
    ServiceDefinitionError,
    load_datasources,
    load_service,
)
from tests.conftest import REPO, write_service

HOSTILE = ["db1;rm -rf /", "$(reboot)", "`reboot`", "db1 && halt", "../../etc/passwd", "-rf"]
PIECES = ["name=", "command.start=", "command.stop=", "vip.address=", "vip.interface=", "\\", "\\u",
          "\\u00", "=", ":", "\n", "\r\n", "#", "!", " ", "\t", "${x}", "'", '"', ";", "&&", "$(",
          "192.0.2.22/24", "eth0", "sudo", "\x00", "\xff", "é", "\ufeff"]  # fmt: skip


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.lists(st.sampled_from(PIECES), max_size=40).map(
            lambda p: "".join(p).encode("utf-8", "surrogatepass")
        ),
    )
)
def test_fuzzed_service_files_only_ever_raise_service_definition_error(
    service_dir: Path, content: bytes
) -> None:
    path = write_service(service_dir, "fuzz.properties", content)
    try:
        service = load_service(path)
    except ServiceDefinitionError:
        return
    assert service.name and service.commands["start"] and service.commands["stop"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_datasource_names_are_refused(demo_home: Path, name: str) -> None:
    with Manager.from_cluster_home(demo_home, "demo", executor=RecordingExecutor()) as manager:
        with pytest.raises(DataSourceError, match="is not valid"):
            manager.add_datasource(name, role="slave")
        with pytest.raises(DataSourceError):
            manager.update_datasource(name, state="ONLINE")
        with pytest.raises(DataSourceError, match="host name"):
            manager.add_datasource("db9", role="slave", host=name)


def test_hostile_names_in_datasource_files_are_refused(service_dir: Path) -> None:
    directory = service_dir.parent / "datasource"
    directory.mkdir(mode=0o755)
    write_service(directory, "evil.properties", "name=db1;rm -rf /\nrole=slave\n")
    write_service(directory, "evil2.properties", "name=db2\nhost=$(reboot)\nrole=slave\n")
    with pytest.raises(Exception, match=r"evil\.properties:1: datasource name") as caught:
        load_datasources(service_dir.parent.parent.parent.parent, "demo")
    assert "evil2.properties:2: host name '$(reboot)' is not valid" in str(caught.value)


def test_no_shell_in_the_package() -> None:
    """Commands run as argv: nothing in floatingip may hand a string to a shell."""
    forbidden = re.compile(
        r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput|commands\.getoutput"
        r"|[\"']/bin/(ba)?sh[\"']|[\"']sh[\"'],\s*[\"']-c[\"']"
    )
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / "floatingip").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []
