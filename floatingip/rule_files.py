"""Rule files: loading a rules directory (each ``*.py`` a module that defines RuleSets, read through
checked directories as service files are), the rule files that ship with floatingip, and
installing them.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from floatingip.config import trusted_directory
from floatingip.errors import ConfigError, Problem, RuleFileError
from floatingip.ruleset import RuleSet
from floatingip.trusted import TrustedDirectory

__all__ = [
    "MAX_RULE_FILE_SIZE",
    "RulesInstalledError",
    "install_rules",
    "load_rule_file",
    "load_rules",
    "shipped_rules_dir",
]

logger = logging.getLogger(__name__)

MAX_RULE_FILE_SIZE = 1 << 20  # a rule file is Python source: compiled whole, so bounded too


def _module_name(path: Path) -> str:
    # Unique per path: 64-bit FNV-1a of it.  Not hashlib (OpenSSL adds 3.5 MB to every manager's
    # RSS), nor zlib (0.2 MB).
    digest = 0xCBF29CE484222325
    for byte in str(path.resolve()).encode():
        digest = (digest ^ byte) * 0x100000001B3 & 0xFFFFFFFFFFFFFFFF
    return f"floatingip_rule_file_{path.stem.replace('-', '_')}_{digest:016x}"


def _error_line(path: Path, exc: BaseException) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename) == path:
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and Path(frame.filename) == path:
            line = frame.lineno
    return line


def _import(path: Path, source: bytes) -> tuple[ModuleType | None, list[Problem]]:
    """Run ``source`` (the file's bytes, already read through checked directories) as a module.

    Compiled from those bytes, not re-opened by path, so what runs is what was checked.  Any
    exception, SystemExit included, becomes a problem; KeyboardInterrupt still interrupts.
    """
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        return None, [Problem(path, None, "cannot be imported as a Python module")]
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)
    except KeyboardInterrupt:
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:  # a rule file must not exit or stop the process loading it
        sys.modules.pop(name, None)
        detail = str(exc)
        message = f"failed to load: {type(exc).__name__}" + (f": {detail}" if detail else "")
        if isinstance(exc, SyntaxError):
            message = f"syntax error: {exc.msg}"
        return None, [Problem(path, _error_line(path, exc), message)]
    return module, []


def _is_rule_file(name: str) -> bool:
    return not name.startswith(("_", "."))


def _load_from(directory: TrustedDirectory, name: str) -> list[RuleSet]:
    path = directory.path / name
    try:
        source, problems = directory.read(name, "rule file", MAX_RULE_FILE_SIZE)
    except ConfigError as exc:
        raise RuleFileError(exc.problems) from None
    if problems:
        raise RuleFileError(problems)
    module, problems = _import(path, source)
    if module is None:
        raise RuleFileError(problems)
    rulesets = [value for value in vars(module).values() if isinstance(value, RuleSet)]
    if not rulesets:
        raise RuleFileError([Problem(path, None, "defines no RuleSet (see floatingip.rules)")])
    for ruleset in rulesets:
        if not ruleset.rules:
            raise RuleFileError([Problem(path, None, f"ruleset {ruleset.name!r} has no rules")])
        ruleset.path = path
    return rulesets


def load_rule_file(path: str | Path) -> list[RuleSet]:
    """Import one rule file and return the RuleSets it defines; RuleFileError if it cannot.

    The file and every directory above it are checked as service files are (floatingip.trusted),
    and the bytes checked are the bytes compiled.  Whatever the file raises while it is imported,
    ``SystemExit`` included, becomes a RuleFileError naming the file and line; only
    ``KeyboardInterrupt`` propagates, so that Ctrl-C still stops a program loading rules.
    """
    path = Path(path).absolute()
    with trusted_directory(path.parent, "rules directory", RuleFileError) as directory:
        return _load_from(directory, path.name)


def load_rules(directory: str | Path) -> list[RuleSet]:
    """Load every ``*.py`` rule file of ``directory`` in sorted order, as Tungsten loads ``.drl``.

    Every problem of every file is reported in one RuleFileError, including two files that
    define a ruleset of the same name.
    """
    directory = Path(directory).absolute()
    if directory.is_file():
        raise RuleFileError(
            [
                Problem(
                    directory,
                    None,
                    "is a file, not a rules directory (which holds *.py rule files)",
                )
            ]
        )
    if not directory.is_dir():
        raise RuleFileError([Problem(directory, None, "rules directory does not exist")])
    problems: list[Problem] = []
    loaded: dict[str, RuleSet] = {}
    with trusted_directory(directory, "rules directory", RuleFileError) as trusted:
        names = [name for name in trusted.names(".py") if _is_rule_file(name)]
        if not names:
            problems.append(Problem(directory, None, "rules directory holds no rule files (*.py)"))
        for name in names:
            path = directory / name
            try:
                rulesets = _load_from(trusted, name)
            except RuleFileError as exc:
                problems.extend(exc.problems)
                continue
            for ruleset in rulesets:
                other = loaded.get(ruleset.name)
                if other is not None:
                    problems.append(
                        Problem(
                            path, None, f"ruleset {ruleset.name!r} is also defined in {other.path}"
                        )
                    )
                    continue
                loaded[ruleset.name] = ruleset
    if problems:
        raise RuleFileError(problems)
    logger.info("loaded rulesets %s from %s", ", ".join(loaded), directory)
    return list(loaded.values())


def shipped_rules_dir() -> Path:
    """The directory of the rule files that ship with floatingip (``FloatingIP.py``).

    Installed, that is the package ``floatingip.shipped_rules``.  Imported from a source tree
    (Python started in the repository root shadows any install with the ``floatingip`` folder,
    which has no ``shipped_rules``), it is the tree's top-level ``rules/``.
    """
    # find_spec, not importlib.resources: that one imports tempfile and more (0.9 MB of RSS)
    spec_name = "floatingip.shipped_rules"
    spec = importlib.util.find_spec(spec_name)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    source_tree_rules = Path(__file__).resolve().parent.parent / "rules"
    if (source_tree_rules / "FloatingIP.py").is_file():
        return source_tree_rules
    raise ModuleNotFoundError("floatingip.shipped_rules is not installed", name=spec_name)


class RulesInstalledError(RuleFileError):
    """install_rules found the rule files already there; ``existing`` lists them."""

    summary = "rule files already installed"

    def __init__(self, existing: Iterable[Path]) -> None:
        self.existing = tuple(existing)
        super().__init__(
            Problem(path, None, "already exists; pass overwrite=True to replace it")
            for path in self.existing
        )


def install_rules(directory: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Copy the shipped rule files into ``directory`` (the seed's step 3); return the copies.

    Unless ``overwrite``, an existing copy raises RulesInstalledError before anything is copied;
    the copies are made mode 0644.
    """
    import shutil  # here: it imports zlib, bz2 and lzma, which a manager never needs

    directory = Path(directory)
    sources = [
        path
        for path in sorted(shipped_rules_dir().glob("*.py"))
        if path.is_file() and _is_rule_file(path.name)
    ]
    existing = [directory / source.name for source in sources if (directory / source.name).exists()]
    if existing and not overwrite:
        raise RulesInstalledError(existing)
    directory.mkdir(parents=True, exist_ok=True)
    installed = []
    for source in sources:
        target = directory / source.name
        shutil.copyfile(source, target)
        target.chmod(0o644)
        installed.append(target)
    return installed
