"""The JSON body checks: depth counted exactly (strings and escapes aside), keys once each."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.json_input import (
    MAX_DEPTH,
    DuplicateKey,
    TooDeep,
    check_depth,
    check_unique_keys,
    is_utf8_json,
)

TRICKY = st.text(alphabet='[]{}"\\ab\u00e9', max_size=8)
"""Text full of what a bracket counter could trip on: brackets, quotes and backslashes."""
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), TRICKY)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(TRICKY, inner, max_size=4)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def wrapped(value: Any, levels: list[bool]) -> Any:
    for as_list in levels:
        value = [value] if as_list else {"k[": value}
    return value


@settings(max_examples=300, deadline=None)
@given(VALUES, st.lists(st.booleans(), max_size=MAX_DEPTH + 10))
def test_depth_is_refused_exactly_above_the_limit(value: Any, levels: list[bool]) -> None:
    document = wrapped(value, levels)
    raw = json.dumps(document, ensure_ascii=False).encode()
    if depth(document) > MAX_DEPTH:
        with pytest.raises(TooDeep):
            check_depth(raw)
    else:
        check_depth(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 65 + b"1" + b"}" * 65,
        b"[[]" * 65 + b"]" * 65,  # no run of openers, yet 66 deep
        b"[" * 100_000,  # never closed
    ],
)
def test_deep_bodies_are_refused(raw: bytes) -> None:
    with pytest.raises(TooDeep):
        check_depth(raw)


def test_brackets_in_text_and_wide_bodies_are_not_depth() -> None:
    check_depth(b'["' + b"[" * 100_000 + b'"]')
    check_depth(b'["\\"' + b"[" * 100 + b'"]')  # an escaped quote does not end the text
    check_depth(b"[" + b"[]," * 100_000 + b"[]]")
    check_depth(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)


def test_a_key_twice_in_any_object_is_refused() -> None:
    check_unique_keys(b'{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}')
    for raw in (b'{"a": 1, "a": 2}', b'{"x": [{"a": 1, "b": 2, "a": 3}]}'):
        with pytest.raises(DuplicateKey):
            check_unique_keys(raw)
    check_unique_keys(b'{"a": 1, "a": ')  # not JSON: the decoder says so, not this


def test_only_utf_8_is_json() -> None:
    text = '{"name": "caf\u00e9"}'
    assert is_utf8_json(None, text.encode()) and is_utf8_json("UTF-8", text.encode())
    assert not is_utf8_json("utf-16", text.encode())
    for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"):
        assert not is_utf8_json(None, text.encode(encoding)), encoding
