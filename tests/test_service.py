"""floatingip.service: loading and validating service definitions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from floatingip import ConfigError, FloatingIPError, load_service, load_services
from floatingip.errors import ServiceDefinitionError
from floatingip.service import MAX_COMMAND_LENGTH
from tests.conftest import (
    EXAMPLE_CLUSTER_HOME,
    SEED_MASTER_PROPERTIES,
    require_root,
    write_service,
)
from tests.guard import call_guarded


def test_seed_master_properties_loads_to_its_five_values(service_dir: Path) -> None:
    path = write_service(service_dir, "master.properties", SEED_MASTER_PROPERTIES)
    service = load_service(path)
    assert service.name == "master"
    assert service.path == path
    assert dict(service.commands) == {
        "start": "sudo /sbin/ifconfig eth0:0 10.10.12.22",
        "stop": "sudo /sbin/ifconfig eth0:0 down",
        "restart": 'echo "Not supported"',
        "status": "sudo /sbin/ifconfig eth0:0",
    }
    assert service.timeout == 10.0
    assert service.argv("start") == ("sudo", "-n", "/sbin/ifconfig", "eth0:0", "10.10.12.22")
    assert service.argv("restart") == ("echo", "Not supported")


def test_shipped_example_is_the_seed_file_verbatim(tmp_path: Path) -> None:
    shipped = EXAMPLE_CLUSTER_HOME / "conf/cluster/demo/service/master.properties"
    assert shipped.read_text(encoding="utf-8") == SEED_MASTER_PROPERTIES
    home = tmp_path / "home"
    shutil.copytree(EXAMPLE_CLUSTER_HOME, home)
    for directory, _, files in os.walk(home):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
    services = load_services(home, "demo")
    assert list(services) == ["master"]
    assert services["master"].commands["stop"] == "sudo /sbin/ifconfig eth0:0 down"


def test_every_problem_is_reported_at_once_with_file_and_line(service_dir: Path) -> None:
    path = write_service(
        service_dir,
        "broken.properties",
        "# a broken service\n"
        "name=master\n"
        "command.start=sudo ip addr add '192.0.2.22/24 dev eth0\n"
        "comand.stop=sudo ip addr del 192.0.2.22/24 dev eth0\n"
        "command.status=\n"
        "command.timeout=soon\n",
    )
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(path)
    error = caught.value
    assert isinstance(error, FloatingIPError)
    found = {(problem.line, problem.message.split(" (")[0]) for problem in error.problems}
    assert (3, "command.start cannot be split into arguments: No closing quotation") in found
    assert (4, "unknown key 'comand.stop'") in found
    assert (5, "command.status is empty") in found
    assert (None, "missing required key 'command.stop'") in found
    assert any(line == 6 and "command.timeout" in message for line, message in found)
    assert "did you mean 'command.stop'?" in str(error)
    assert f"{path}:4: unknown key 'comand.stop'" in str(error)
    assert "5 problems" in str(error)


def test_missing_name_and_start(service_dir: Path) -> None:
    path = write_service(service_dir, "x.properties", "command.stop=true\n")
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(path)
    messages = {problem.message for problem in caught.value.problems}
    assert messages == {
        "missing required key 'name'",
        "missing required key 'command.start' (or vip.* keys instead)",
    }


def test_placeholders_stay_literal_and_are_refused_as_shell_syntax(service_dir: Path) -> None:
    path = write_service(
        service_dir,
        "vip.properties",
        "name=master\nVIP=192.0.2.22\ncommand.start=sudo ip addr add ${VIP}/24 dev eth0\n"
        "command.stop=ip addr del 192.0.2.22/24 dev eth0 && arping -U 192.0.2.22\n",
    )
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(path)
    message = str(caught.value)
    assert f"{path}:2: unknown key 'VIP'" in message
    assert f"{path}:3: command.start uses shell syntax ($ variable expansion)" in message
    assert f"{path}:4: command.stop uses shell syntax ('&&' operator)" in message


def test_quoted_shell_characters_are_plain_arguments(service_dir: Path) -> None:
    path = write_service(
        service_dir,
        "m.properties",
        "name=master\ncommand.start=logger 'a && b; $HOME'\ncommand.stop=echo \"x|y\"\n",
    )
    service = load_service(path)
    assert service.argv("start") == ("logger", "a && b; $HOME")
    assert service.argv("stop") == ("echo", "x|y")


def test_duplicate_key_is_an_error(service_dir: Path) -> None:
    path = write_service(
        service_dir, "m.properties", "name=master\ncommand.start=true\ncommand.stop=true\nname=x\n"
    )
    with pytest.raises(
        ServiceDefinitionError, match=r"m.properties:4: 'name' is set more than once"
    ):
        load_service(path)


def test_timeout_is_settable_per_service(service_dir: Path) -> None:
    path = write_service(
        service_dir,
        "m.properties",
        "name=master\ncommand.start=true\ncommand.stop=true\ncommand.timeout=2.5\n",
    )
    assert load_service(path).timeout == 2.5


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "1e9"])
def test_bad_timeouts_are_refused(service_dir: Path, bad: str) -> None:
    path = write_service(
        service_dir,
        "m.properties",
        f"name=master\ncommand.start=true\ncommand.stop=true\ncommand.timeout={bad}\n",
    )
    with pytest.raises(ServiceDefinitionError, match=r"m.properties:4: command.timeout must be"):
        load_service(path)


@pytest.mark.parametrize("name", ["db1;rm -rf /", "$(reboot)", "../etc", "", "a b"])
def test_unsafe_service_names_are_refused(service_dir: Path, name: str) -> None:
    path = write_service(
        service_dir, "m.properties", f"name={name}\ncommand.start=true\ncommand.stop=true\n"
    )
    with pytest.raises(ServiceDefinitionError, match=r"service name .* is not valid"):
        load_service(path)


def test_byte_order_mark_gets_a_specific_hint(service_dir: Path) -> None:
    path = write_service(
        service_dir,
        "m.properties",
        "\ufeffname=master\ncommand.start=true\ncommand.stop=true\n",
    )
    with pytest.raises(ServiceDefinitionError, match="starts with a byte order mark"):
        load_service(path)


def test_undecodable_bytes_name_the_line(service_dir: Path) -> None:
    path = write_service(
        service_dir, "m.properties", b"name=master\ncommand.start=echo \xff\ncommand.stop=true\n"
    )
    with pytest.raises(
        ServiceDefinitionError, match=r"m.properties:2: byte 0xff .* not valid UTF-8"
    ):
        load_service(path)


def test_two_files_with_the_same_name_are_refused_together(
    cluster_home: Path, service_dir: Path
) -> None:
    write_service(service_dir, "a.properties", SEED_MASTER_PROPERTIES)
    write_service(service_dir, "b.properties", SEED_MASTER_PROPERTIES)
    write_service(service_dir, "c.properties", "name=other\ncommand.start=true\n")
    with pytest.raises(ServiceDefinitionError) as caught:
        load_services(cluster_home, "demo")
    message = str(caught.value)
    assert "b.properties:2: service name 'master' is already defined in" in message
    assert "a.properties:2" in message
    assert "c.properties: missing required key 'command.stop'" in message


def test_load_services_keys_by_name_and_ignores_other_files(
    cluster_home: Path, service_dir: Path
) -> None:
    write_service(service_dir, "master.properties", SEED_MASTER_PROPERTIES)
    write_service(
        service_dir, "reader.properties", "name=slave\ncommand.start=true\ncommand.stop=true\n"
    )
    write_service(service_dir, "notes.txt", "not a service")
    services = load_services(cluster_home, "demo")
    assert sorted(services) == ["master", "slave"]
    assert services["slave"].path.name == "reader.properties"


def test_missing_cluster_and_bad_cluster_name(cluster_home: Path) -> None:
    with pytest.raises(ServiceDefinitionError, match="no service directory for cluster 'nope'"):
        load_services(cluster_home, "nope")
    with pytest.raises(ConfigError, match=r"cluster name .* is not valid"):
        load_services(cluster_home, "../demo")


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_writable_service_file_is_refused(service_dir: Path, mode: int) -> None:
    path = write_service(service_dir, "master.properties", SEED_MASTER_PROPERTIES, mode=mode)
    if mode == 0o664:  # group-writable counts when the group is not the owner's private one
        require_root()
        os.chown(path, -1, 65534)
    with pytest.raises(
        ServiceDefinitionError, match=f"writable by group or others \\(mode {mode:04o}\\)"
    ):
        load_service(path)


def test_writable_service_directory_is_refused(cluster_home: Path, service_dir: Path) -> None:
    write_service(service_dir, "master.properties", SEED_MASTER_PROPERTIES)
    service_dir.chmod(0o777)
    with pytest.raises(ServiceDefinitionError, match="service directory is writable"):
        load_services(cluster_home, "demo")
    with pytest.raises(ServiceDefinitionError, match="service directory is writable"):
        load_service(service_dir / "master.properties")


def test_file_owned_by_another_user_is_refused(service_dir: Path) -> None:
    require_root()
    path = write_service(service_dir, "master.properties", SEED_MASTER_PROPERTIES)
    os.chown(path, 65534, 65534)  # nobody
    with pytest.raises(ServiceDefinitionError, match="owned by uid 65534, not by root"):
        load_service(path)


def test_a_1_6_mb_command_start_is_refused_naming_the_file(service_dir: Path) -> None:
    """It took 48 s to load (shlex.split is quadratic on long tokens)."""
    command = "sudo /sbin/ifconfig eth0:0 " + "x" * 1_600_000
    text = f"name=master\ncommand.start={command}\ncommand.stop=true\n"
    path = write_service(service_dir, "master.properties", text)
    outcome = call_guarded("floatingip.load_service", str(path))
    assert outcome["error"] == "ServiceDefinitionError"
    assert outcome["problems"] == [
        [str(path), None, "is 1.5 MiB; a service file may have at most 64 KiB"]
    ]


def test_a_command_longer_than_the_limit_is_refused_with_its_line(service_dir: Path) -> None:
    long_command = "echo " + "x" * MAX_COMMAND_LENGTH
    text = f"name=master\ncommand.start=true\ncommand.stop={long_command}\n"
    path = write_service(service_dir, "master.properties", text)
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(path)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{path}:3: command.stop is {len(long_command)} characters long; "
        f"a command may have at most {MAX_COMMAND_LENGTH}"
    ]
    fitting = "echo " + "x" * (MAX_COMMAND_LENGTH - 5)
    write_service(
        service_dir, "master.properties", f"name=m\ncommand.start={fitting}\ncommand.stop=true\n"
    )
    assert load_service(path).argv("start") == ("echo", "x" * (MAX_COMMAND_LENGTH - 5))


def test_an_error_shows_the_first_problems_and_counts_the_rest(service_dir: Path) -> None:
    """A 100 MB file of unknown keys built a 7.9M-character error; within the size limit a file
    can still hold thousands of problems."""
    text = "name=master\ncommand.start=true\ncommand.stop=true\n" + "".join(
        f"unknown{i}=1\n" for i in range(5000)
    )
    path = write_service(service_dir, "master.properties", text[: 64 * 1024])
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(path)
    count = len(caught.value.problems)
    assert count > 4000
    lines = str(caught.value).splitlines()
    assert lines[0] == f"invalid service definition ({count} problems):"
    assert lines[1].startswith(f"  {path}:4: unknown key 'unknown0' (known keys: name, ")
    assert lines[1:21] == [f"  {problem}" for problem in caught.value.problems[:20]]
    assert lines[21:] == [f"  ... and {count - 20} more problems"]


def test_a_100_mb_file_of_unknown_keys_gives_a_short_error(service_dir: Path) -> None:
    path = service_dir / "master.properties"
    block = "".join(f"unknown{i}=1\n" for i in range(100_000)).encode()
    with path.open("wb") as out:
        while out.tell() < 100 << 20:
            out.write(block)
    path.chmod(0o644)
    outcome = call_guarded("floatingip.load_service", str(path))
    assert outcome["error"] == "ServiceDefinitionError"
    assert len(str(outcome["message"])) < 500
    assert f"{path}: is 100." in str(outcome["message"])


def test_problems_quoting_a_long_value_quote_its_start_only(service_dir: Path) -> None:
    key = "k" * 10_000
    path = write_service(
        service_dir,
        "master.properties",
        f"name=master\ncommand.start=true\ncommand.stop=true\n{key}=1\n",
    )
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(path)
    message = caught.value.problems[0].message
    assert message.startswith("unknown key 'kkkk")
    assert "... (10000 characters)" in message
    assert len(message) < 400
