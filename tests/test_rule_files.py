"""floatingip.rule_files: loading rule files and the rules directory, install-rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from floatingip.cli import main
from floatingip.errors import RuleFileError
from floatingip.rule_files import (
    MAX_RULE_FILE_SIZE,
    install_rules,
    load_rule_file,
    load_rules,
    shipped_rules_dir,
)

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
