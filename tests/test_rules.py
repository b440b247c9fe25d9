"""floatingip.rules: rule files, the rules directory, install-rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from floatingip import Manager
from floatingip.cli import main
from floatingip.engine import Engine
from floatingip.errors import RuleFileError
from floatingip.rules import (
    MAX_RULE_FILE_SIZE,
    RuleContext,
    RuleSet,
    active_policy,
    c,
    datasource,
    install_rules,
    load_rule_file,
    load_rules,
    m,
    one_of,
    other_than,
    shipped_rules_dir,
)
from floatingip.testing import RecordingExecutor

RULE_HEADER = "from floatingip.rules import RuleSet, c, datasource\n"


def write_rule_file(directory: Path, name: str, text: str, mode: int = 0o644) -> Path:
    directory.mkdir(mode=0o755, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


GOOD_RULES = (
    RULE_HEADER
    + """
rules = RuleSet("{name}")

@rules.rule("{name}: any datasource", c.ds << datasource())
def any_datasource(ctx):
    ctx.start("x")
"""
)


def test_shipped_rule_file_loads_with_its_three_rules() -> None:
    (ruleset,) = load_rules(shipped_rules_dir())
    assert ruleset.name == "FloatingIP"
    assert ruleset.services == ("master",)
    assert ruleset.path == shipped_rules_dir() / "FloatingIP.py"
    assert [rule.name for rule in ruleset.rules] == [
        "FloatingIP: the master on this host goes ONLINE",
        "FloatingIP: the datasource holding the VIP stops being an ONLINE master",
        "FloatingIP: failsafe, the manager stops while holding the VIP",
    ]
    assert all("FloatingIP.py:" in rule.source for rule in ruleset.rules)


def test_files_load_in_sorted_order_and_underscore_files_are_skipped(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    write_rule_file(rules_dir, "b.py", GOOD_RULES.format(name="B"))
    write_rule_file(rules_dir, "a.py", GOOD_RULES.format(name="A"))
    write_rule_file(rules_dir, "_helpers.py", "raise RuntimeError('not a rule file')\n")
    write_rule_file(rules_dir, "notes.txt", "not python")
    assert [ruleset.name for ruleset in load_rules(rules_dir)] == ["A", "B"]


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write_rule_file(tmp_path / "rules", "Bad.py", RULE_HEADER + "\nrules = RuleSet(\n")
    with pytest.raises(RuleFileError) as caught:
        load_rules(tmp_path / "rules")
    (problem,) = caught.value.problems
    assert problem.path == path and problem.line == 3
    assert "syntax error" in problem.message


def test_error_while_importing_names_file_and_line(tmp_path: Path) -> None:
    text = RULE_HEADER + "rules = RuleSet('X')\n\n@rules.rule('r')\ndef f(ctx):\n    pass\n"
    path = write_rule_file(tmp_path / "rules", "NoCondition.py", text)
    with pytest.raises(RuleFileError) as caught:
        load_rule_file(path)
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == (path, 4)
    assert "ValueError: rule 'r' has no conditions" in problem.message


def test_file_without_ruleset_or_rules_is_refused(tmp_path: Path) -> None:
    empty = write_rule_file(tmp_path / "rules", "Empty.py", "X = 1\n")
    with pytest.raises(RuleFileError, match="defines no RuleSet"):
        load_rule_file(empty)
    hollow = write_rule_file(tmp_path / "rules", "Hollow.py", RULE_HEADER + "r = RuleSet('H')\n")
    with pytest.raises(RuleFileError, match="ruleset 'H' has no rules"):
        load_rule_file(hollow)


def test_two_files_defining_the_same_ruleset_are_refused(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    write_rule_file(rules_dir, "One.py", GOOD_RULES.format(name="Same"))
    write_rule_file(rules_dir, "Two.py", GOOD_RULES.format(name="Same"))
    with pytest.raises(RuleFileError, match=r"Two.py: ruleset 'Same' is also defined in .*One.py"):
        load_rules(rules_dir)


def test_every_bad_file_is_reported_together(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    write_rule_file(rules_dir, "A.py", "import no_such_module_xyz\n")
    write_rule_file(rules_dir, "B.py", GOOD_RULES.format(name="B"), mode=0o666)
    with pytest.raises(RuleFileError) as caught:
        load_rules(rules_dir)
    message = str(caught.value)
    assert "A.py:1: failed to load: ModuleNotFoundError" in message
    assert "B.py: rule file is writable by group or others" in message


def test_missing_or_empty_rules_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="rules directory does not exist"):
        load_rules(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuleFileError, match="holds no rule files"):
        load_rules(tmp_path / "empty")


def test_ruleset_and_rule_names_are_checked() -> None:
    with pytest.raises(ValueError, match="ruleset name"):
        RuleSet("bad name")
    rules = RuleSet("Ok")
    rules.rule("r", object())(lambda ctx: None)
    with pytest.raises(ValueError, match="already has a rule named 'r'"):
        rules.rule("r", object())


def test_install_rules_copies_the_shipped_file(tmp_path: Path) -> None:
    target = tmp_path / "manager" / "rules"
    installed = install_rules(target)
    assert [path.name for path in installed] == ["FloatingIP.py"]
    assert (target / "FloatingIP.py").read_bytes() == (
        shipped_rules_dir() / "FloatingIP.py"
    ).read_bytes()
    assert [ruleset.name for ruleset in load_rules(target)] == ["FloatingIP"]
    with pytest.raises(RuleFileError, match="already exists"):
        install_rules(target)
    assert install_rules(target, overwrite=True) == installed


def test_install_rules_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-rules", str(tmp_path / "rules")]) == 0
    out = capsys.readouterr().out
    assert "installed" in out and "FloatingIP: the master on this host goes ONLINE" in out
    assert main(["install-rules", str(tmp_path / "rules")]) == 1
    assert "already exists" in capsys.readouterr().err


@pytest.mark.slow
def test_shipped_rule_file_is_installed_with_the_package(tmp_path: Path) -> None:
    """A non-editable install carries rules/FloatingIP.py (package floatingip.shipped_rules)."""
    repo = Path(__file__).resolve().parent.parent
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(repo),
        ],
        check=True,
        capture_output=True,
    )
    assert (target / "floatingip" / "shipped_rules" / "FloatingIP.py").is_file()
    assert (target / "floatingip" / "py.typed").is_file()


@pytest.mark.parametrize(
    ("statement", "shown"),
    [
        ("sys.exit(3)", "SystemExit: 3"),
        ("raise SystemExit('bye')", "SystemExit: bye"),
        ("raise GeneratorExit()", "GeneratorExit"),
        ("class Stop(BaseException): pass\nraise Stop('no')", "Stop: no"),
    ],
)
def test_a_base_exception_at_import_is_a_rule_file_error(
    tmp_path: Path, statement: str, shown: str
) -> None:
    """sys.exit(3) in a rule file used to exit the process that loaded it."""
    path = write_rule_file(tmp_path / "rules", "exits.py", f"import sys\n\n{statement}\n")
    line = 3 + statement.count("\n")
    with pytest.raises(RuleFileError) as caught:
        load_rule_file(path)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{path}:{line}: failed to load: {shown}"
    ]
    with pytest.raises(RuleFileError, match=f"exits.py:{line}: failed to load: {shown}"):
        load_rules(path.parent)


def test_keyboard_interrupt_at_import_still_interrupts(tmp_path: Path) -> None:
    """Ctrl-C while rules load stops the program, as it would anywhere else."""
    path = write_rule_file(tmp_path / "rules", "interrupted.py", "raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        load_rule_file(path)


def test_a_rule_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = write_rule_file(tmp_path / "rules", "Huge.py", "X = 1\n")
    with path.open("ab") as out:
        out.truncate(MAX_RULE_FILE_SIZE + 1)
    with pytest.raises(RuleFileError) as caught:
        load_rule_file(path)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{path}: is 1.0 MiB; a rule file may have at most 1 MiB"
    ]


# -- rule files that say what they mean (issue 12, item 6) -----------------------------------

# The shipped rule file as it was written before the condition helpers, pri and attribute
# access: raw durable DSL, dict lookups in consequences.  Rule files like it keep working.
OLD_STYLE_RULES = """
from floatingip.rules import RuleSet, active_policy, c, datasource, m, manager_running
from floatingip.rules import manager_stopping, service

rules = RuleSet("OldStyle", services=["master"])


@rules.rule(
    "the master on this host goes ONLINE",
    c.ds << datasource(role="master", state="ONLINE", local=True),
    c.policy << active_policy(),
    c.vip << service("master", held=False),
    c.manager << manager_running(),
    pri=2,
)
def master_online(ctx):
    ctx.start("master", datasource=ctx.ds["name"])


@rules.rule(
    "the datasource holding the VIP stops being an ONLINE master",
    c.vip << service("master", held=True),
    c.ds
    << (
        datasource()
        & (m.name == c.vip.holder)
        & ((m.role != "master") | (m.state != "ONLINE") | (m.local == False))
    ),
    c.policy << active_policy(),
    pri=1,
)
def master_not_online(ctx):
    ctx.stop("master", datasource=ctx.ds["name"])


@rules.rule(
    "failsafe, the manager stops while holding the VIP",
    c.manager << manager_stopping(),
    c.policy << active_policy(),
    c.vip << service("master", held=True),
)
def failsafe(ctx):
    ctx.stop("master", datasource=ctx.vip["holder"] or None)
"""


def test_the_unless_helper_is_the_raw_condition_it_replaces() -> None:
    helper = datasource(
        name=c.vip.holder, unless={"role": "master", "state": "ONLINE", "local": True}
    )
    raw = (
        datasource()
        & (m.name == c.vip.holder)
        & ((m.role != "master") | (m.state != "ONLINE") | (m.local == False))  # noqa: E712
    )
    assert helper.define() == raw.define()  # type: ignore[attr-defined]
    raw_policy = (m.kind == "policy") & (m.mode != "MAINTENANCE")
    assert active_policy().define() == raw_policy.define()  # type: ignore[attr-defined]


def session(manager: Manager) -> None:
    """Start, stop, start again, lose the role, start, close: every rule of the file fires."""
    manager.update_datasource("db1", state="ONLINE")
    manager.update_datasource("db1", state="OFFLINE")
    manager.update_datasource("db1", state="ONLINE")
    manager.update_datasource("db1", role="slave")
    manager.update_datasource("db1", role="master")
    manager.close()


def test_an_old_style_rule_file_behaves_as_the_shipped_one(demo_home: Path, tmp_path: Path) -> None:
    old_dir = tmp_path / "old-rules"
    write_rule_file(old_dir, "OldStyle.py", OLD_STYLE_RULES)
    calls = []
    for rules_dir in (shipped_rules_dir(), old_dir):
        recorder = RecordingExecutor()
        manager = Manager.from_cluster_home(
            demo_home, "demo", rules_dir=rules_dir, host="db1", executor=recorder
        )
        session(manager)
        calls.append(recorder.calls)
        fired = {e.message for e in manager.history if e.kind == "command"}
        assert fired
    shipped, old = calls
    assert old == shipped
    assert [call[4] for call in shipped if call[2:4] == ("ip", "addr")] == [
        "add", "del", "add", "del", "add", "del"
    ]  # fmt: skip


def firing_order(*rules: tuple[str, dict[str, int]]) -> list[str]:
    ruleset = RuleSet("Order")
    for name, order in rules:
        ruleset.rule(name, c.ds << datasource(), **order)(lambda ctx: None)
    return Engine([ruleset]).replace({"id": "datasource:db1", "kind": "datasource"}).fired


def test_salience_fires_higher_first_as_in_drools_and_pri_lower_first() -> None:
    assert firing_order(("low", {"salience": -5}), ("default", {}), ("high", {"salience": 10})) == [
        "high",
        "default",
        "low",
    ]
    assert firing_order(("second", {"pri": 2}), ("first", {"pri": 1})) == ["first", "second"]


def test_salience_and_pri_do_not_mix_and_salience_is_bounded() -> None:
    ruleset = RuleSet("Mixed")
    ruleset.rule("a", c.ds << datasource(), pri=1)(lambda ctx: None)
    with pytest.raises(ValueError, match=r"salience .* or by pri .*not both"):
        ruleset.rule("b", c.ds << datasource(), salience=1)
    with pytest.raises(ValueError, match="not both"):
        RuleSet("X").rule("c", c.ds << datasource(), salience=1, pri=1)
    with pytest.raises(ValueError, match="out of range"):
        RuleSet("Y").rule("d", c.ds << datasource(), salience=40000)


def test_one_of_and_other_than_match_membership_and_inequality() -> None:
    ruleset = RuleSet("Members")

    @ruleset.rule("a relay or a standby", c.ds << datasource(role=one_of("relay", "standby")))
    def member(ctx: RuleContext) -> None:
        ctx.start("member", datasource=ctx.ds.name)

    @ruleset.rule("not ONLINE", c.ds << datasource(state=other_than("ONLINE", "UNKNOWN")))
    def other(ctx: RuleContext) -> None:
        ctx.start("other", datasource=ctx.ds.name)

    engine = Engine([ruleset])

    def asked(name: str, role: str, state: str) -> list[str]:
        fact = {"id": f"datasource:{name}", "kind": "datasource", "name": name, "role": role}
        fired = engine.replace({**fact, "state": state})
        return [intent.service for intent in fired.intents]

    assert asked("a", "relay", "ONLINE") == ["member"]
    assert asked("b", "standby", "FAILED") == ["member", "other"]
    assert asked("c", "master", "OFFLINE") == ["other"]
    assert asked("d", "master", "UNKNOWN") == []
    with pytest.raises(ValueError, match="at least one value"):
        one_of()


def test_a_consequence_reads_fields_as_attributes_or_keys() -> None:
    seen: list[object] = []
    ruleset = RuleSet("Attributes")

    @ruleset.rule("any", c.ds << datasource())
    def read(ctx: RuleContext) -> None:
        seen.extend([ctx.ds.name, ctx.ds["name"], ctx.ds.local, dict(ctx.ds)["state"]])
        try:
            ctx.ds.holder  # noqa: B018
        except AttributeError as exc:
            seen.append(str(exc))
        try:
            ctx.ds.name = "x"  # type: ignore[misc]
        except AttributeError as exc:
            seen.append(str(exc))

    fact = {"id": "datasource:db1", "kind": "datasource", "name": "db1", "local": True}
    assert Engine([ruleset]).replace({**fact, "state": "ONLINE"}).errors == []
    assert seen[:4] == ["db1", "db1", True, "ONLINE"]
    assert "a datasource fact has no field 'holder'" in str(seen[4])
    assert "read-only" in str(seen[5])
