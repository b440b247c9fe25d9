"""Differential test: floatingip.properties against the JVM's java.util.Properties, file by file."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floatingip.errors import PropertiesError
from floatingip.properties import read_properties
from tests.conftest import report, require_program

ORACLE_SOURCE = Path(__file__).parent / "java" / "PropertiesOracle.java"
GENERATED_FILES = 300

# Hand-written edge cases: every divergence of pyjavaproperties 0.7 listed in DESIGN.md and more.
HAND_WRITTEN: list[str | bytes] = [
    "name=master\n",
    "# comment\n! bang comment\nname=master\n",
    "   # indented comment\nkey=value\n",
    "key value\nkey2:value2\nkey3 = value3\nkey4\t:\tvalue4\n",
    "key\fvalue\n",
    "key\n",
    "key=\n",
    "=value\n",
    ":value\n",
    "key==value\n",
    "key = = value\n",
    "key :: value\n",
    "key\\=x=y\n",
    "key\\:x:y\n",
    "my\\ svc=value\n",
    "a\\\\b=c\n",
    "a\\\\\\b=c\n",
    "key=value \n",
    "key=value\\ \n",
    "key=trailing tab\t\n",
    "key=${x}\n",
    "x=1\nkey=${x} {x}\n",
    "VIP=192.0.2.22\ncommand.start=sudo ip addr add ${VIP}/24 dev eth0\n",
    "key=a\\\nb\n",
    "key=a\\\n    b\n",
    "key=a \\\n  b \\\n  c\n",
    "key=even\\\\\nnext=line\n",
    "key=odd\\\\\\\nline\n",
    "key=last\\",
    "key=last\\\n",
    "key=last\\\\",
    "\\\nkey=lone backslash line\n",
    "\\",
    "\\\n",
    "\\\n   ",
    "  \\\n  \\\n",
    "\\\n#not a comment?\nkey=v\n",
    "key=a\\\n# not a comment\n",
    "key=a\\\n\nnext=b\n",
    "key=\\u0041\\u00e9\\u20AC\n",
    "key=\\uD83D\\uDE00 and \\uD800 alone\n",
    "key=\\u004\n",
    "key=\\u00zz\n",
    "key=\\uABCD\\u\n",
    "\\u0041key=v\n",
    "key=\\t\\n\\r\\f\\\\\\x\\q\n",
    "key=\\#not\\!comment\n",
    "key=#value\n",
    "key=café ☕ 😀\n",
    "clé=valeur\n",
    "key=crlf\r\nnext=line\r\n",
    "key=cr\rnext=line\r",
    "key=cont\\\r\n  inued\r\n",
    "key=cont\\\r  inued\r",
    "\n\n\n   \n\t\nkey=v\n\n",
    "key=v",
    "",
    "   ",
    "#only a comment",
    "dup=1\ndup=2\n",
    " leading = spaces \n",
    "key = value with = equals : colons\n",
    'command.restart=echo "Not supported"\n',
    "command.start=sudo /sbin/ifconfig eth0:0 10.10.12.22\n",
    "\ufeffname=bom\n",
    b"name=\xff\xfe\n",
    b"name=ok\nbad=\xc3\x28\n",
    b"name=\xed\xa0\x80\n",
]

PIECES = [
    "\\",
    "\\\\",
    "\\u",
    "\\u0041",
    "\\u00E9",
    "\\uD83D\\uDE00",
    "\\uDC00",
    "\\u12",
    "=",
    ":",
    " ",
    "\t",
    "\f",
    "\n",
    "\r",
    "\r\n",
    "#",
    "!",
    "${x}",
    "{x}",
    "x",
    "key",
    "value",
    "é",
    "😀",
    "\\ ",
    "\\t",
    "\\n",
    "\\r",
    "\\f",
    "\\=",
    "\\:",
    "\\#",
    "\\q",
    "name",
    "command.start",
    "sudo -n ip",
    "\x00",
]
PROPERTIES_TEXT = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80),
)


def _utf16_hex(text: str) -> str:
    return text.encode("utf-16-be", "surrogatepass").hex()


def floatingip_reading(path: Path) -> str:
    try:
        entries = read_properties(path)
    except PropertiesError:
        return "ERR"
    final = {entry.key: entry.value for entry in entries}
    pairs = sorted((_utf16_hex(k), _utf16_hex(v)) for k, v in final.items())
    return " ".join(["OK", *(f"{k}={v}" for k, v in pairs)])


class JavaOracle:
    def __init__(self, classes: Path) -> None:
        java = require_program("java", package="openjdk-17-jdk-headless")
        self._process = subprocess.Popen(
            [java, "-cp", str(classes), "PropertiesOracle"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.compared = 0
        self.generated = 0

    def reading(self, path: Path) -> str:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(f"{path}\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline().rstrip("\n")
        assert answer, "the Java oracle died"
        return "ERR" if answer.startswith("ERR") else answer

    def compare(self, path: Path) -> None:
        self.compared += 1
        java, ours = self.reading(path), floatingip_reading(path)
        assert ours == java, f"divergence on {path.read_bytes()!r}"

    def close(self) -> None:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)
        self._process.stdout.close()


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaOracle]:
    javac = require_program("javac", package="openjdk-17-jdk-headless")
    classes = tmp_path_factory.mktemp("oracle")
    subprocess.run([javac, "-d", str(classes), str(ORACLE_SOURCE)], check=True)
    oracle = JavaOracle(classes)
    yield oracle
    oracle.close()
    report(f"differential test: {oracle.compared} files compared with java.util.Properties")
    if oracle.generated:  # the whole module ran, not a single selected case
        assert oracle.compared >= 200


@pytest.mark.parametrize("content", HAND_WRITTEN, ids=range(len(HAND_WRITTEN)))
def test_hand_written_file_reads_as_java_reads_it(
    oracle: JavaOracle, tmp_path: Path, content: str | bytes
) -> None:
    path = tmp_path / "case.properties"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    oracle.compare(path)


@settings(
    max_examples=GENERATED_FILES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(content=PROPERTIES_TEXT)
def test_generated_file_reads_as_java_reads_it(
    oracle: JavaOracle, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "generated.properties"
    path.write_text(content, encoding="utf-8", newline="")
    oracle.generated += 1
    oracle.compare(path)
