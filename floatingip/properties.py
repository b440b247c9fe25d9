"""Java ``.properties`` files, read exactly as ``java.util.Properties.load(Reader)`` reads them.

Tungsten's service definitions are Java properties files, so a command line must mean here what
it means to the Java manager.  pyjavaproperties 0.7 gets many cases wrong (it substitutes ``${key}``
and ``{key}`` in values, ignores ``\\uXXXX`` and ``\\t`` escapes, strips trailing spaces, mangles
keys with escaped backslashes, and crashes on a continuation on the last line).
:class:`JavaProperties` keeps pyjavaproperties' ``Properties`` class and API but replaces its parser
with a line-for-line port of the JDK 17 algorithm (``LineReader.readLine``, ``load0`` and
``loadConvert``); a differential test checks it against a real JVM.

Files are decoded as strict UTF-8 (what ``PropertyResourceBundle`` uses since Java 9); invalid bytes
are an error naming the line, never silently replaced.  A file (or text) over :data:`MAX_FILE_SIZE`
is refused before it is parsed, so no input takes long: a real one is a few hundred bytes.
"""

from __future__ import annotations

import bisect
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from floatingip.errors import ConfigError, Problem, PropertiesError
from floatingip.trusted import format_limit, read_bounded

with warnings.catch_warnings():
    # pyjavaproperties 0.7 has invalid escape sequences ('\:'); compiling it warns.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    import pyjavaproperties

__all__ = [
    "MAX_FILE_SIZE",
    "JavaProperties",
    "PropertyEntry",
    "decode_properties",
    "parse_properties",
    "read_properties",
]

logger = logging.getLogger(__name__)

ENCODING = "utf-8"
# The parser is a pure-Python port: 64 KiB parse in a few tens of milliseconds.
MAX_FILE_SIZE = 64 * 1024
_WHITESPACE = " \t\f"
_LINE_ENDS = "\r\n"
_SIMPLE_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "f": "\f"}
_HEX = "0123456789abcdefABCDEF"


@dataclass(frozen=True)
class PropertyEntry:
    """One key/value pair and the physical line where its logical line starts."""

    key: str
    value: str
    line: int


class _LineIndex:
    """Maps a character offset to a 1-based physical line number (``\\n``, ``\\r``, ``\\r\\n``)."""

    def __init__(self, text: str) -> None:
        starts = [0]
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == "\r":
                if i + 1 < n and text[i + 1] == "\n":
                    i += 1
                starts.append(i + 1)
            elif c == "\n":
                starts.append(i + 1)
            i += 1
        self._starts = starts

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)

    def column_of(self, offset: int) -> int:
        return offset - self._starts[self.line_of(offset) - 1] + 1


def _logical_lines(text: str) -> Iterator[tuple[str, list[int], int]]:
    """Yield each logical line, per character its offset in ``text``, and where the line starts.

    A port of ``java.util.Properties.LineReader.readLine`` (JDK 17), including its quirks: a comment
    is recognised only at the start of a logical line, a backslash continues a line only when the
    run of backslashes before the line end is odd, and leading whitespace of a continuation line is
    dropped.
    """
    n = len(text)
    off = 0
    while True:
        chars: list[str] = []
        offsets: list[int] = []
        start = -1
        skip_whitespace = True
        appended_line_begin = False
        preceding_backslash = False
        while True:
            if off >= n:
                if not chars:
                    return
                if preceding_backslash:
                    chars.pop()
                    offsets.pop()
                yield "".join(chars), offsets, start
                return
            c = text[off]
            off += 1
            if skip_whitespace:
                if c in _WHITESPACE:
                    continue
                if not appended_line_begin and c in _LINE_ENDS:
                    continue
                skip_whitespace = False
                appended_line_begin = False
            if not chars and c in "#!":
                while off < n and text[off] not in _LINE_ENDS:
                    off += 1
                off += 1  # the line end itself, as Java consumes it
                skip_whitespace = True
                continue
            if c not in _LINE_ENDS:
                if start < 0:
                    start = off - 1
                chars.append(c)
                offsets.append(off - 1)
                preceding_backslash = (c == "\\") and not preceding_backslash
                continue
            if not chars:
                skip_whitespace = True
                continue
            if off >= n:
                if preceding_backslash:
                    chars.pop()
                    offsets.pop()
                yield "".join(chars), offsets, start
                return
            if not preceding_backslash:
                yield "".join(chars), offsets, start
                break
            chars.pop()  # the continuation backslash is not part of the line
            offsets.pop()
            skip_whitespace = True
            appended_line_begin = True
            preceding_backslash = False
            if c == "\r" and text[off] == "\n":
                off += 1


def _split_key_value(line: str) -> tuple[int, int]:
    """Return (key length, value start) as ``Properties.load0`` computes them."""
    limit = len(line)
    key_len = 0
    value_start = limit
    has_separator = False
    preceding_backslash = False
    while key_len < limit:
        c = line[key_len]
        if c in "=:" and not preceding_backslash:
            value_start = key_len + 1
            has_separator = True
            break
        if c in _WHITESPACE and not preceding_backslash:
            value_start = key_len + 1
            break
        preceding_backslash = (c == "\\") and not preceding_backslash
        key_len += 1
    while value_start < limit:
        c = line[value_start]
        if c not in _WHITESPACE:
            if not has_separator and c in "=:":
                has_separator = True
            else:
                break
        value_start += 1
    return key_len, value_start


def _unescape(segment: str, offsets: list[int], errors: list[tuple[int, str]]) -> str:
    """``Properties.loadConvert``: resolve backslash escapes; record malformed ``\\uXXXX``."""
    if "\\" not in segment:
        return segment
    out: list[str] = []
    i, end = 0, len(segment)
    while i < end:
        c = segment[i]
        i += 1
        if c != "\\":
            out.append(c)
            continue
        if i >= end:  # unreachable for text from _logical_lines; kept for direct callers
            break
        c = segment[i]
        i += 1
        if c == "u":
            digits = segment[i : i + 4]
            if len(digits) < 4 or any(d not in _HEX for d in digits):
                escape = "\\u" + digits
                errors.append((offsets[i - 2], f"malformed \\uXXXX escape {escape!r}"))
                i += 4
                continue
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append(_SIMPLE_ESCAPES.get(c, c))
    # Java strings are UTF-16: a \\uD83D\\uDE00 pair is one character, a lone surrogate stays.
    return "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def decode_properties(data: bytes, path: Path | None) -> str:
    """Decode a file's bytes as strict UTF-8; PropertiesError naming each line with a bad byte."""
    text = data.decode(ENCODING, errors="surrogateescape")
    bad = [i for i, c in enumerate(text) if "\udc80" <= c <= "\udcff"]
    if not bad:
        return text
    index = _LineIndex(text)
    problems = []
    reported_lines: set[int] = set()
    for offset in bad:
        line = index.line_of(offset)
        if line in reported_lines:
            continue
        reported_lines.add(line)
        byte = ord(text[offset]) - 0xDC00
        problems.append(
            Problem(
                path,
                line,
                f"byte 0x{byte:02x} at column {index.column_of(offset)} is not valid UTF-8 "
                "(properties files are read as UTF-8; use \\uXXXX escapes or re-save as UTF-8)",
            )
        )
    raise PropertiesError(problems)


def parse_properties(text: str, path: Path | None = None) -> list[PropertyEntry]:
    """Parse properties text; return every entry in file order, duplicates included.

    Raises :class:`PropertiesError` listing every malformed ``\\uXXXX`` escape, or at once for
    text longer than :data:`MAX_FILE_SIZE` characters.
    """
    if len(text) > MAX_FILE_SIZE:
        message = (
            f"is {len(text)} characters long; a properties file may have at most "
            f"{format_limit(MAX_FILE_SIZE)}"
        )
        raise PropertiesError([Problem(path, None, message)])
    index = _LineIndex(text)
    entries: list[PropertyEntry] = []
    errors: list[tuple[int, str]] = []
    for line, offsets, start in _logical_lines(text):
        key_len, value_start = _split_key_value(line)
        key = _unescape(line[:key_len], offsets[:key_len], errors)
        value = _unescape(line[value_start:], offsets[value_start:], errors)
        entries.append(PropertyEntry(key, value, index.line_of(start)))
    if errors:
        raise PropertiesError(
            Problem(path, index.line_of(offset), f"column {index.column_of(offset)}: {message}")
            for offset, message in errors
        )
    return entries


def read_properties(path: str | Path) -> list[PropertyEntry]:
    """Read a UTF-8 properties file; return its entries in file order, duplicates included."""
    path = Path(path)
    try:
        data = read_bounded(path, "properties file", MAX_FILE_SIZE)
    except ConfigError as exc:
        raise PropertiesError(exc.problems) from None
    return parse_properties(decode_properties(data, path), path)


class JavaProperties(pyjavaproperties.Properties):  # type: ignore[misc]
    """pyjavaproperties' ``Properties`` with java.util.Properties' exact reading.

    ``load`` accepts a binary stream (decoded as strict UTF-8) or a text stream.  Values are stored
    literally: no ``{key}`` substitution, no stripping.  ``entries`` keeps every pair with its line.
    """

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[PropertyEntry] = []

    def load(self, stream: IO[Any]) -> None:
        with stream as fp:
            data = fp.read(MAX_FILE_SIZE + 1)
        path = Path(fp.name) if isinstance(getattr(fp, "name", None), str) else None
        if len(data) > MAX_FILE_SIZE:
            message = (
                f"is larger than {format_limit(MAX_FILE_SIZE)}, the most a properties file may have"
            )
            raise PropertiesError([Problem(path, None, message)])
        text = decode_properties(data, path) if isinstance(data, bytes) else data
        for entry in parse_properties(text, path):
            self.entries.append(entry)
            self.process_pair(entry.key, entry.value)

    def process_pair(self, key: str, value: str) -> None:
        # The parent would substitute {key} references and strip the value.
        self._props[key] = value
        self._origprops[key] = value
        self._keymap[key] = key
        if key not in self._keyorder:
            self._keyorder.append(key)

    def __getitem__(self, name: str) -> str:
        return self._props[name]  # type: ignore[no-any-return]
