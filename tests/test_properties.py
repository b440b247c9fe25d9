"""floatingip.properties: the cases where pyjavaproperties 0.7 and java.util.Properties disagree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from floatingip.errors import PropertiesError
from floatingip.properties import MAX_FILE_SIZE, JavaProperties, parse_properties, read_properties
from tests.guard import call_guarded


def read(text: str) -> dict[str, str]:
    return {entry.key: entry.value for entry in parse_properties(text)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("VIP=192.0.2.22\nstart=ip addr add ${VIP}/24\n", "ip addr add ${VIP}/24"),
        ("VIP=192.0.2.22\nstart=ip addr add {VIP}/24\n", "ip addr add {VIP}/24"),
        ("start=a\\tb\n", "a\tb"),
        ("start=\\u0041\\u00e9\n", "Aé"),
        ("start=value  \n", "value  "),
        ("start=ends with backslash \\\\\n", "ends with backslash \\"),
        ("start=a\\\n    b\n", "ab"),
    ],
)
def test_values_read_as_java_reads_them(text: str, expected: str) -> None:
    assert read(text)["start" if "start" in text else "VIP"] == expected


def test_escaped_space_and_escaped_backslash_in_keys() -> None:
    assert read("my\\ svc=x\n") == {"my svc": "x"}
    assert read("a\\\\b=c\n") == {"a\\b": "c"}


def test_continuation_on_the_last_line_is_dropped_not_a_crash() -> None:
    assert read("key=last\\") == {"key": "last"}


def test_crlf_and_cr_line_ends() -> None:
    assert read("a=1\r\nb=2\rc=3") == {"a": "1", "b": "2", "c": "3"}


def test_entries_keep_physical_line_numbers_and_duplicates() -> None:
    entries = parse_properties("# c\n\na=1\nb=x\\\n  y\nc=3\na=4\n")
    assert [(e.key, e.value, e.line) for e in entries] == [
        ("a", "1", 3),
        ("b", "xy", 4),
        ("c", "3", 6),
        ("a", "4", 7),
    ]


def test_malformed_unicode_escapes_are_all_reported_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.properties"
    path.write_text("ok=1\nbad=\\u12\nworse=x \\uzzzz\n", encoding="utf-8")
    with pytest.raises(PropertiesError) as caught:
        read_properties(path)
    assert [(p.path, p.line) for p in caught.value.problems] == [(path, 2), (path, 3)]
    assert f"{path}:2: column 5: malformed \\uXXXX escape" in str(caught.value)
    assert f"{path}:3: column 9" in str(caught.value)


def test_invalid_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.properties"
    path.write_bytes(b"name=master\ncommand.start=echo caf\xe9\n")
    with pytest.raises(PropertiesError) as caught:
        read_properties(path)
    message = str(caught.value)
    assert f"{path}:2: byte 0xe9 at column 23 is not valid UTF-8" in message


def test_unreadable_file_is_a_properties_error(tmp_path: Path) -> None:
    with pytest.raises(PropertiesError, match="cannot read"):
        read_properties(tmp_path / "missing.properties")


def test_java_properties_keeps_the_pyjavaproperties_api(tmp_path: Path) -> None:
    path = tmp_path / "p.properties"
    path.write_text("x=1\ncmd=echo ${x} {x}\n", encoding="utf-8")
    props = JavaProperties()
    with path.open("rb") as stream:
        props.load(stream)
    assert props.getProperty("cmd") == "echo ${x} {x}"
    assert props["x"] == "1"
    assert props.getProperty("missing") is None
    assert sorted(props.propertyNames()) == ["cmd", "x"]
    assert [entry.line for entry in props.entries] == [1, 2]
    with pytest.raises(KeyError):
        props["missing"]
    props.setProperty("y", "{x} stays")
    assert props["y"] == "{x} stays"


def test_a_100_mb_one_line_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Before the limit, a 100 MB line gave no answer in 120 s."""
    path = tmp_path / "huge.properties"
    with path.open("wb") as out:
        out.write(b"command.start=echo ")
        for _ in range(100):
            out.write(b"a" * (1 << 20))
    outcome = call_guarded("floatingip.read_properties", str(path))
    assert outcome["error"] == "PropertiesError"
    assert outcome["problems"] == [
        [str(path), None, "is 100.0 MiB; a properties file may have at most 64 KiB"]
    ]


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_a_fifo_or_device_is_refused_without_reading_it(tmp_path: Path, kind: str) -> None:
    """Neither blocks waiting for a writer nor reads without end."""
    if kind == "fifo":
        path = tmp_path / "pipe.properties"
        os.mkfifo(path)
    else:
        path = Path(kind)
    outcome = call_guarded("floatingip.read_properties", str(path))
    assert outcome["error"] == "PropertiesError"
    assert outcome["problems"] == [[str(path), None, "is not a regular file"]]


def test_java_properties_load_reads_a_bounded_amount_of_a_stream() -> None:
    outcome = call_guarded("floatingip.JavaProperties", "/dev/zero", stream=True)
    assert outcome["error"] == "PropertiesError"
    assert outcome["problems"] == [
        ["/dev/zero", None, "is larger than 64 KiB, the most a properties file may have"]
    ]


def test_text_over_the_limit_is_refused_at_once() -> None:
    with pytest.raises(PropertiesError, match="at most 64 KiB"):
        parse_properties("a" * (MAX_FILE_SIZE + 1))
    assert parse_properties("a=" + "b" * (MAX_FILE_SIZE - 2))[0].value == "b" * (MAX_FILE_SIZE - 2)
