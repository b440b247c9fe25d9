"""What every configuration file of a cluster home shares: safe ownership, plain names, known keys.

Service files, datasource files and rule files all decide which commands run, often as root
through sudo, so each is refused if another user could have written it, or could have swapped a
directory on the way to it (floatingip.trusted reads them through checked descriptors).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from floatingip.errors import ConfigError, Problem
from floatingip.properties import MAX_FILE_SIZE, decode_properties, parse_properties
from floatingip.trusted import TrustedDirectory, open_directory

__all__ = [
    "NAME_PATTERN",
    "ConfigFile",
    "cluster_directory",
    "cluster_problem",
    "name_problem",
    "quoted",
    "read_config_file",
    "trusted_directory",
]

# Service, datasource and cluster names end up in paths, logs and the shell: keep them plain.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def name_problem(name: str, what: str) -> str | None:
    """Why ``name`` is not a valid ``what`` name, or None if it is."""
    if NAME_PATTERN.fullmatch(name):
        return None
    return (
        f"{what} name {quoted(name)} is not valid "
        "(letters, digits, '.', '_', '-'; at most 64; starting with a letter or digit)"
    )


def cluster_directory(cluster_home: str | Path, cluster: str) -> Path:
    """``cluster_home/conf/cluster/<cluster>``; the cluster name must be a plain name."""
    why = name_problem(cluster, "cluster")
    if why is not None:
        raise ConfigError([Problem(Path(cluster_home), None, why)])
    return Path(cluster_home) / "conf" / "cluster" / cluster


def cluster_problem(cluster_home: str | Path, cluster: str) -> str | None:
    """What is wrong with ``cluster_home`` as the home of ``cluster``, or None if nothing.

    Each answer says what the path is (missing, a file, a directory inside a cluster home, no
    cluster home at all) and, where it can, which clusters do exist.
    """
    home = Path(cluster_home)
    if not home.exists():
        return f"cluster home {home} does not exist"
    if not home.is_dir():
        return f"cluster home {home} is a file, not a directory"
    clusters = home / "conf" / "cluster"
    if not clusters.is_dir():
        resolved = home.resolve()
        for parent in list(resolved.parents)[:3]:  # conf, conf/cluster, conf/cluster/<name>
            if (parent / "conf" / "cluster").is_dir():
                inside = resolved.relative_to(parent)
                return (
                    f"{home} is the {inside} directory of cluster home {parent}, not a cluster "
                    f"home itself: pass {parent}; {_clusters_in(parent / 'conf' / 'cluster')}"
                )
        return f"{home} is not a cluster home: it has no conf/cluster directory"
    why = name_problem(cluster, "cluster")
    if why is not None:
        return why
    if not (clusters / cluster).is_dir():
        return (
            f"cluster {cluster!r} does not exist in cluster home {home} "
            f"(no directory {clusters / cluster}); {_clusters_in(clusters)}"
        )
    return None


def _clusters_in(directory: Path) -> str:
    names = sorted(path.name for path in directory.iterdir() if path.is_dir())
    return f"clusters there: {', '.join(names)}" if names else "it holds no cluster yet"


def quoted(text: str, limit: int = 60) -> str:
    """``repr(text)``, or of its start only when it is long (messages stay short)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


@contextmanager
def trusted_directory(
    path: Path, what: str, error: type[ConfigError]
) -> Iterator[TrustedDirectory]:
    """Open ``path`` through checked directories (see floatingip.trusted); ``error`` if unsafe."""
    try:
        directory = open_directory(path, what)
    except ConfigError as exc:
        raise error(exc.problems) from None
    with directory:
        yield directory


@dataclass(frozen=True)
class ConfigFile:
    """The keys of a properties file with the line of each, once its file-level checks passed."""

    path: Path
    values: dict[str, str]
    lines: dict[str, int]


def read_config_file(
    directory: TrustedDirectory, name: str, what: str, known_keys: Sequence[str]
) -> tuple[ConfigFile | None, list[Problem]]:
    """Read file ``name`` of ``directory`` (checked, bounded), as Java does; refuse repeated and
    unknown keys.  Returns the file (None if it could not be read at all) and every problem."""
    path = directory.path / name
    try:
        data, problems = directory.read(name, what, MAX_FILE_SIZE)
    except ConfigError as exc:
        return None, list(exc.problems)
    try:
        entries = parse_properties(decode_properties(data, path), path)
    except ConfigError as exc:
        return None, [*problems, *exc.problems]
    lines: dict[str, list[int]] = {}
    for entry in entries:
        lines.setdefault(entry.key, []).append(entry.line)
    hints = ConfigError.shown  # difflib is slow: only the problems an error shows get a hint
    for key, where in lines.items():
        if len(where) > 1:
            listed = ", ".join(str(line) for line in where[:10])
            more = f" and {len(where) - 10} more" if len(where) > 10 else ""
            problems.append(
                Problem(
                    path, where[-1], f"{quoted(key)} is set more than once (lines {listed}{more})"
                )
            )
        if key not in known_keys:
            problems.append(Problem(path, where[0], _unknown_key_message(key, known_keys, hints)))
            hints -= 1
    values = {entry.key: entry.value for entry in entries}
    last_lines = {key: where[-1] for key, where in lines.items()}
    return ConfigFile(path, values, last_lines), problems


def _unknown_key_message(key: str, known_keys: Sequence[str], hints: int) -> str:
    message = f"unknown key {quoted(key)}"
    if key.startswith("\ufeff"):
        return message + " (the file starts with a byte order mark; save it as UTF-8 without BOM)"
    import difflib  # here, not at the top: only a refused file needs it (0.2 MB of a manager)

    close = difflib.get_close_matches(key, known_keys, n=1, cutoff=0.6) if hints > 0 else []
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known_keys)}"
    return f"{message} ({hint})"
