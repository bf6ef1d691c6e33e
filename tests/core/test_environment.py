import pytest

from ovsetup.core.environment import EnvKey, format_typed, parse_statements, parse_typed
from ovsetup.core.errors import UsageError


@pytest.mark.parametrize("text, value", [
    ("bool:True", True), ("bool:false", False), ("bool:TRUE", True), ("int:6100", 6100),
    ("str:a b", "a b"), ("str:", ""), ("none:None", None), ("multi-str:a\nb", ["a", "b"]),
])
def test_typed_values_parse(text, value):
    assert parse_typed("K/k", text) == value


@pytest.mark.parametrize("text, fragment", [
    ("bool:maybe", "bool:maybe is not a boolean"), ("bool:0", "bool:0 is not a boolean"),
    ("int:x", "int:x is not an integer"), ("float:1", "unknown type 'float'"), ("True", "has no type"),
])
def test_malformed_values_name_the_key(text, fragment):
    with pytest.raises(UsageError) as caught:
        parse_typed("OVESETUP_CONFIG/websocketProxyConfig", text)
    assert str(caught.value).startswith("OVESETUP_CONFIG/websocketProxyConfig: ")
    assert fragment in str(caught.value)


def test_statements_split_with_shell_rules_and_later_wins():
    pairs = parse_statements("A/b=str:'x y' A/b=str:z C/d=int:3")
    assert pairs == [("A/b", "x y"), ("A/b", "z"), ("C/d", 3)]
    assert dict(pairs)["A/b"] == "z"


def test_token_without_equals_is_an_error():
    with pytest.raises(UsageError, match="'OVESETUP_CONFIG/fqdn' is not KEY=type:value"):
        parse_statements("OVESETUP_CONFIG/fqdn")


def test_format_round_trips():
    for value in (True, 7, "x", None, ["a", "b"]):
        text = format_typed(value).replace("\n ", "\n")
        assert parse_typed("K/k", text) == value


def test_key_check_type_and_validator():
    key = EnvKey("A/port", "int", validator=lambda v: None if v < 10 else "too big", help="A port.")
    assert key.check(None) is None
    assert key.check(3) is None
    assert key.check("3") == "A/port: expected int, got 'str:3'"
    assert key.check(11) == "A/port: too big"
