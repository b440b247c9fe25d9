"""Security: no shell anywhere, hostile names refused, a fuzzed properties reader that only
ever answers with a ServiceDefinitionError, and configuration read only through directories that
no other user can change (checked on the opened descriptors, so a swap cannot slip past)."""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floatingip import (
    DataSourceError,
    FloatingIPError,
    Manager,
    load_datasources,
    load_service,
    load_services,
)
from floatingip.errors import DataSourceDefinitionError, RuleFileError, ServiceDefinitionError
from floatingip.rules import load_rule_file, load_rules
from floatingip.testing import RecordingExecutor
from tests.conftest import (
    REPO,
    report,
    require_root,
    write_service,
)
from tests.guard import call_guarded
from tests.test_rule_files import GOOD_RULES, write_rule_file

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


NOBODY = 65534


def test_a_100_mb_datasource_file_is_refused_before_it_is_read(demo_home: Path) -> None:
    path = demo_home / "conf/cluster/demo/datasource/db1.properties"
    with path.open("ab") as out:
        out.truncate(100 << 20)  # sparse: the size is what matters, and it is checked first
    outcome = call_guarded("floatingip.load_datasources", str(demo_home), "demo")
    assert outcome["error"] == "DataSourceDefinitionError"
    assert outcome["problems"] == [
        [str(path), None, "is 100.0 MiB; a datasource file may have at most 64 KiB"]
    ]


def _loaders(home: Path) -> dict[str, Callable[[], object]]:
    demo = home / "conf/cluster/demo"
    return {
        "load_services": lambda: load_services(home, "demo"),
        "load_service": lambda: load_service(demo / "service/master.properties"),
        "load_datasources": lambda: load_datasources(home, "demo"),
        "load_rules": lambda: load_rules(demo / "rules"),
        "load_rule_file": lambda: load_rule_file(demo / "rules/Good.py"),
    }


@pytest.fixture
def full_home(demo_home: Path) -> Path:
    write_rule_file(demo_home / "conf/cluster/demo/rules", "Good.py", GOOD_RULES.format(name="G"))
    return demo_home


@pytest.mark.parametrize("loader", list(_loaders(Path())))
@pytest.mark.parametrize(
    ("mode", "owner", "group", "why"),
    [
        (0o777, 0, 0, "is writable by group or others (mode 0777)"),
        # group-writable for a group that is not root's own: its members could swap directories
        (0o775, 0, NOBODY, "is writable by group or others (mode 0775)"),
        (0o1777, NOBODY, NOBODY, "is owned by uid 65534, not by root or the current user"),
        (0o755, NOBODY, NOBODY, "is owned by uid 65534, not by root or the current user"),
    ],
)
def test_an_unsafe_ancestor_is_refused_naming_it(
    full_home: Path, loader: str, mode: int, owner: int, group: int, why: str
) -> None:
    require_root()
    ancestor = full_home / "conf" / "cluster"
    ancestor.chmod(mode)
    os.chown(ancestor, owner, group)
    with pytest.raises(FloatingIPError) as caught:
        _loaders(full_home)[loader]()
    (problem,) = caught.value.problems  # type: ignore[attr-defined]
    assert problem.path == ancestor
    assert problem.message.startswith(f"parent directory {why}")


@pytest.mark.parametrize("loader", list(_loaders(Path())))
def test_group_write_for_the_owners_private_group_is_accepted(full_home: Path, loader: str) -> None:
    """umask 002 (Ubuntu's default for users): directories 0775 and files 0664 whose group is the
    owner's own user private group, which no one else is in (as Debian's sshd StrictModes)."""
    me = pwd.getpwuid(os.geteuid())
    group = grp.getgrgid(me.pw_gid)
    others = [user.pw_name for user in pwd.getpwall() if user.pw_gid == me.pw_gid]
    if set(group.gr_mem) - {me.pw_name} or set(others) - {me.pw_name}:
        pytest.skip(f"group {group.gr_name} is not {me.pw_name}'s private group here")
    for path in [full_home, *full_home.rglob("*")]:
        os.chown(path, me.pw_uid, me.pw_gid)
        path.chmod(0o775 if path.is_dir() else 0o664)
    assert _loaders(full_home)[loader]()


@pytest.mark.parametrize("loader", list(_loaders(Path())))
def test_a_sticky_root_owned_ancestor_like_tmp_is_accepted(full_home: Path, loader: str) -> None:
    require_root()  # the sticky directory must be root's; another user's is refused
    (full_home / "conf" / "cluster").chmod(0o1777)
    assert _loaders(full_home)[loader]()


@pytest.mark.parametrize(
    ("relative", "error"),
    [
        ("service/master.properties", ServiceDefinitionError),
        ("datasource/db1.properties", DataSourceDefinitionError),
        ("rules/Good.py", RuleFileError),
    ],
)
def test_a_symlinked_file_is_refused(
    full_home: Path, relative: str, error: type[FloatingIPError]
) -> None:
    path = full_home / "conf/cluster/demo" / relative
    real = full_home / path.name
    path.rename(real)
    path.symlink_to(real)
    loaders = _loaders(full_home)
    names = {"service": ["load_services", "load_service"], "datasource": ["load_datasources"]}
    for name in names.get(relative.split("/")[0], ["load_rules", "load_rule_file"]):
        with pytest.raises(error) as caught:
            loaders[name]()
        assert [str(problem) for problem in caught.value.problems] == [  # type: ignore[attr-defined]
            f"{path}: is a symbolic link; give the file itself"
        ]


def test_symlinked_directories_are_followed_and_checked(tmp_path: Path, full_home: Path) -> None:
    require_root()
    link = tmp_path / "link-home"
    link.symlink_to(full_home)
    assert load_services(link, "demo")["master"].name == "master"
    (full_home / "conf").chmod(0o777)
    with pytest.raises(ServiceDefinitionError) as caught:
        load_services(link, "demo")
    (problem,) = caught.value.problems
    assert problem.path == full_home / "conf"
    # A symlink that another user planted in a sticky directory is not followed.
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    (full_home / "conf").chmod(0o755)
    planted = shared / "home"
    planted.symlink_to(full_home)
    os.chown(planted, NOBODY, NOBODY, follow_symlinks=False)
    with pytest.raises(ServiceDefinitionError) as caught:
        load_services(planted, "demo")
    (problem,) = caught.value.problems
    assert problem.path == planted
    assert problem.message.startswith("symbolic link is owned by uid 65534")


AT_FDCWD = -100
RENAME_EXCHANGE = 2


@contextmanager
def swapping(first: Path, second: Path, *, uid: int | None = None) -> Iterator[Callable[[], bool]]:
    """Exchange two directories with renameat2(RENAME_EXCHANGE) in a loop, in a child process
    (as ``uid`` when given), until the block ends; yields a check that the child still swaps."""
    libc = ctypes.CDLL(None, use_errno=True)
    paths = (os.fsencode(first), os.fsencode(second))
    pid = os.fork()
    if pid == 0:  # the attacker: only system calls until it is killed
        try:
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            while libc.renameat2(AT_FDCWD, paths[0], AT_FDCWD, paths[1], RENAME_EXCHANGE) == 0:
                pass
        finally:
            os._exit(1)

    def still_swapping() -> bool:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)

    try:
        yield still_swapping
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


LOADS = 2000
ATTACKER_START = "echo attacker"
LEGIT_START = "sudo /sbin/ifconfig eth0:0 192.0.2.22"


def _tree(directory: Path, start: str, owner: int) -> None:
    """A cluster directory with a service and a datasource file, every entry owned by ``owner``."""
    for sub in ("service", "datasource"):
        (directory / sub).mkdir(parents=True)
    service = f"name=master\ncommand.start={start}\ncommand.stop=sudo /sbin/ifconfig eth0:0 down\n"
    (directory / "service/master.properties").write_text(service)
    (directory / "datasource/db1.properties").write_text("name=db1\nrole=master\n")
    for path in [directory, *directory.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
        os.chown(path, owner, owner)


def _load_while_swapping(home: Path, uid: int | None) -> tuple[int, int, list[str]]:
    """Load LOADS times while the cluster's directory and the attacker's are exchanged; return
    (legitimate loads, attacker loads, the errors)."""
    legit = attacker = 0
    errors = []
    cluster = home / "conf/cluster"
    with swapping(cluster / "demo", cluster / "evil", uid=uid) as still_swapping:
        for _ in range(LOADS):
            try:
                start = load_services(home, "demo")["master"].commands["start"]
            except ServiceDefinitionError as exc:
                errors.append(str(exc))
                continue
            attacker += start == ATTACKER_START
            legit += start != ATTACKER_START
        assert still_swapping()
    return legit, attacker, errors


@pytest.fixture
def public_home() -> Iterator[Path]:
    """A cluster home that an unprivileged user can reach (pytest's tmp_path is private)."""
    require_root()
    home = Path(tempfile.mkdtemp(prefix="floatingip-race-"))
    home.chmod(0o755)
    (home / "conf/cluster").mkdir(parents=True, mode=0o755)
    (home / "conf").chmod(0o755)
    try:
        yield home
    finally:
        shutil.rmtree(home)


def test_a_user_swapping_directories_under_a_world_writable_ancestor_never_wins(
    public_home: Path,
) -> None:
    """The issue's attack: conf/cluster is world-writable (no sticky bit) and another user
    exchanges conf/cluster/demo with a directory of theirs while root loads the services."""
    cluster = public_home / "conf/cluster"
    cluster.chmod(0o777)
    _tree(cluster / "demo", LEGIT_START, 0)
    _tree(cluster / "evil", ATTACKER_START, NOBODY)
    legit, attacker, errors = _load_while_swapping(public_home, NOBODY)
    report(
        f"world-writable ancestor, {LOADS} loads while swapping: {attacker} attacker, "
        f"{legit} legitimate, {len(errors)} refused"
    )
    assert attacker == 0
    assert legit == 0
    assert all(f"  {cluster}: parent directory is writable" in error for error in errors)


def test_a_swap_between_check_and_read_never_returns_the_other_content(
    public_home: Path,
) -> None:
    """Every directory on the way is checked on the descriptor that is then read through: a swap
    of a trusted directory with another user's (made here by root, to reach the window) gives
    the trusted content or a refusal, never the other user's content."""
    cluster = public_home / "conf/cluster"
    _tree(cluster / "demo", LEGIT_START, 0)
    _tree(cluster / "evil", ATTACKER_START, NOBODY)
    legit, attacker, errors = _load_while_swapping(public_home, None)
    report(
        f"trusted ancestor swapped by root, {LOADS} loads: {attacker} attacker, "
        f"{legit} legitimate, {len(errors)} refused"
    )
    assert attacker == 0
    assert legit > 0 and errors
    assert all("owned by uid 65534" in error for error in errors)
