"""Type-prefixed ids: well formed, Crockford base32, and in creation order when sorted as text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.ids import is_id, new_id, prefix_of

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
MAX_MS = 2**48 - 1  # the 48-bit timestamp covers dates until the year 10889
prefixes = st.from_regex(r"[a-z][a-z0-9]{0,11}", fullmatch=True)


def timestamp_of(identifier: str) -> int:
    body = identifier.split("-", 1)[1]
    value = 0
    for char in body:
        value = value * 32 + CROCKFORD.index(char)
    return value >> 80


def test_an_id_is_its_prefix_a_dash_and_26_characters() -> None:
    identifier = new_id("vol")
    prefix, body = identifier.split("-")
    assert prefix == "vol"
    assert len(body) == 26
    assert prefix_of(identifier) == "vol"
    assert is_id(identifier)
    assert is_id(identifier, "vol")
    assert not is_id(identifier, "i")


@given(prefix=prefixes, at_ms=st.integers(0, MAX_MS))
def test_the_body_is_crockford_base32_and_carries_the_time(prefix: str, at_ms: int) -> None:
    identifier = new_id(prefix, at_ms=at_ms)
    assert set(identifier.split("-", 1)[1]) <= set(CROCKFORD)
    assert prefix_of(identifier) == prefix
    assert timestamp_of(identifier) == at_ms


def test_the_alphabet_leaves_out_letters_misread_as_digits() -> None:
    assert len(set(CROCKFORD)) == 32
    assert not set("ilou") & set(CROCKFORD)
    bodies = "".join(new_id("i").split("-")[1] for _ in range(500))
    assert set(bodies) <= set(CROCKFORD)
    assert len(set(bodies)) == 32  # 13,000 random characters use the whole alphabet


@given(st.lists(st.integers(0, MAX_MS), min_size=2, max_size=20, unique=True))
def test_text_order_is_creation_order(moments: list[int]) -> None:
    moments.sort()
    ids = [new_id("i", at_ms=ms) for ms in moments]
    assert sorted(ids) == ids


def test_ids_made_one_after_another_sort_in_order() -> None:
    ids = [new_id("i", at_ms=1_700_000_000_000 + n) for n in range(1000)]
    assert sorted(ids) == ids
    assert len(set(ids)) == 1000


def test_ids_of_the_same_millisecond_differ() -> None:
    same = {new_id("i", at_ms=1_700_000_000_000) for _ in range(1000)}
    assert len(same) == 1000


@pytest.mark.parametrize("prefix", ["", "I", "1a", "a-b", "a_b", "abcdefghijklm", "é"])
def test_a_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid id prefix"):
        new_id(prefix)


GOOD = "i-01jd3x0000000000000000000z"


@pytest.mark.parametrize(
    "identifier",
    [
        "",
        "i",
        "i-",
        GOOD[:-1],  # 25 characters
        GOOD + "0",  # 27 characters
        GOOD.upper(),
        "I-" + GOOD[2:],
        "i_" + GOOD[2:],
        "1-" + GOOD[2:],
        "abcdefghijklm-" + GOOD[2:],
        *(GOOD[:-1] + letter for letter in "ilou"),
        " " + GOOD,
        GOOD + " ",
        pytest.param(GOOD + "\n", id="trailing-newline"),  # `$` matches before a final \n
    ],
)
def test_a_malformed_id_is_refused(identifier: str) -> None:
    assert is_id(GOOD)
    assert not is_id(identifier)
    with pytest.raises(ValueError, match="malformed id"):
        prefix_of(identifier)
