"""Property-based: on any input the `--otopi-environment` parser and the answer-file reader give a value
or their own error (`UsageError`), nothing else; derandomized with a fixed example count."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovsetup.core.config import ConfigValues, read_config_files, render_answer_file
from ovsetup.core.environment import TYPES, format_typed, parse_statements
from ovsetup.core.errors import UsageError

SETTINGS = settings(derandomize=True, max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
KEY = st.from_regex(r"[A-Z][A-Z0-9_]{0,8}/[a-z][A-Za-z0-9]{0,8}", fullmatch=True)
TYPED = st.one_of(st.sampled_from(TYPES), st.text(max_size=5)).flatmap(
    lambda kind: st.text(max_size=30).map(lambda value: f"{kind}:{value}"))
STATEMENT = st.one_of(st.tuples(KEY, TYPED).map("=".join), st.text(max_size=40))
ANSWER_LINE = st.one_of(
    st.sampled_from(["[environment:default]", "[environment:init]", "[environment:bogus]", "[other]", "",
                     "# comment", " continuation", "[environment:default"]),
    st.tuples(KEY, TYPED).map("=".join),
    st.text(max_size=40))


@SETTINGS
@given(st.lists(STATEMENT, max_size=6).map(" ".join))
def test_otopi_environment_gives_pairs_or_a_usage_error(text):
    try:
        pairs = parse_statements(text)
    except UsageError:
        return
    for key, value in pairs:
        assert isinstance(key, str) and key
        assert value is None or isinstance(value, (bool, int, str, list))


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("answers") / "answers.conf"


def read(path: Path, data: bytes) -> ConfigValues:
    path.write_bytes(data)
    return read_config_files([path])


@SETTINGS
@given(st.lists(ANSWER_LINE, max_size=12).map("\n".join).map(str.encode) | st.binary(max_size=200))
def test_answer_file_gives_values_or_a_usage_error(answers, data):
    try:
        values = read(answers, data)
    except UsageError:
        return
    for section in values.sections.values():
        for value in section.values():
            assert value is None or isinstance(value, (bool, int, str, list))


@SETTINGS
@given(st.dictionaries(KEY, st.one_of(st.none(), st.booleans(), st.integers(),
                                      st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                                              max_size=20).map(str.strip)),
                       max_size=8))
def test_a_written_answer_file_reads_back(answers, entries):
    """What the answer-file writer renders, the reader gives back (types included)."""
    values = read(answers, render_answer_file(entries).encode())
    assert {k: format_typed(v) for k, v in values.sections["default"].items()} == \
        {k: format_typed(v) for k, v in entries.items()}
