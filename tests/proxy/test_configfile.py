"""oVirt's shell-like KEY=value syntax."""
from __future__ import annotations

import pytest

from ovcommon.configfile import ConfigSyntaxError, load_files, parse_bool, parse_text


def test_values_quotes_escapes_and_comments():
    text = '''
# comment
A=plain
export B="two words" # trailing comment
C='single ${A}'
D="${A}/x"
E=a\\ b
F=
G="HIGH:!aNULL"
'''
    assert parse_text(text) == {"A": "plain", "B": "two words", "C": "single ${A}", "D": "plain/x",
                                "E": "a b", "F": "", "G": "HIGH:!aNULL"}


@pytest.mark.parametrize("text", ["NOT A LINE", 'A="open', "A=${UNDEFINED}", "A=x y"])
def test_syntax_errors(text):
    with pytest.raises(ConfigSyntaxError):
        parse_text(text)


def test_files_in_order_last_wins_and_expansion_across_files(tmp_path):
    first, second = tmp_path / "a.conf", tmp_path / "b.conf"
    first.write_text("A=1\nB=x\n")
    second.write_text('A=2\nC="${B}y"\n')
    assert load_files([first, tmp_path / "missing.conf", second]) == {"A": "2", "B": "x", "C": "xy"}


@pytest.mark.parametrize(("text", "value"), [("True", True), ("yes", True), ("1", True), ("t", True),
                                             ("False", False), ("no", False), ("", False)])
def test_bool(text, value):
    assert parse_bool(text) is value


def test_bad_bool():
    with pytest.raises(ValueError):
        parse_bool("maybe")


def test_escaped_dollar_in_double_quotes_stays_literal():
    """What `render.shell_value` writes for a password holding `${` reads back unchanged."""
    from ovcommon.render import shell_value

    secret = 'p${A}w"\\`$'
    assert parse_text(f"A=x\nP={shell_value(secret)}\n")["P"] == secret
