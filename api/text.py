"""The request bodies' text types: names, descriptions, reasons and e-mail addresses.

Every body that carries one derives from ``Body``: once msgspec has decoded it, each such
field is refused with a clear 422 naming it when it holds a control, format or bidi
character, and is kept in its NFKC form (see ``domain.text``). The pattern goes into the
OpenAPI document only: the check here gives the better answer than msgspec's regex error.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import msgspec.inspect as inspect

from domain.text import EMAIL_PATTERN, TEXT_PATTERN, clean, clean_email

MARK = "scloud_text"
"""The ``Meta.extra`` key that marks a field as text people read."""
Kind = Literal["text", "email"]


def _text(kind: Kind, pattern: str, *, min_length: int = 0, max_length: int) -> msgspec.Meta:
    return msgspec.Meta(
        min_length=min_length or None,
        max_length=max_length,
        extra_json_schema={"pattern": pattern},
        extra={MARK: kind},
    )


Name = Annotated[str, _text("text", TEXT_PATTERN, min_length=1, max_length=100)]
"""A display name: a tenant's, a project's, an image's, a role's, an API key's."""
Description = Annotated[str, _text("text", TEXT_PATTERN, max_length=1000)]
Reason = Annotated[str, _text("text", TEXT_PATTERN, min_length=1, max_length=500)]
"""Why an operator did something (a freeze, an adjustment), or a payment's reference."""
Email = Annotated[str, _text("email", EMAIL_PATTERN, max_length=254)]

_CLEANERS = {"text": clean, "email": clean_email}
Shape = Literal["one", "list", "values"]
_PLANS: dict[type, list[tuple[str, Kind, Shape]]] = {}


class Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request body whose text fields are cleaned once decoded."""

    def __post_init__(self) -> None:
        for name, kind, shape in _plan(type(self)):
            value = getattr(self, name)
            if value is None:
                continue
            cleaner = _CLEANERS[kind]
            if shape == "one":
                setattr(self, name, cleaner(value, name))
            elif shape == "list":
                setattr(self, name, [cleaner(item, name) for item in value])
            else:
                setattr(self, name, {k: cleaner(v, name) for k, v in value.items()})


def _plan(cls: type) -> list[tuple[str, Kind, Shape]]:
    """Which fields of ``cls`` hold text, computed once per class."""
    plan = _PLANS.get(cls)
    if plan is None:
        plan = []
        info = inspect.type_info(cls)
        assert isinstance(info, inspect.StructType)
        for field in info.fields:
            found = text_field(field.type)
            if found is not None:
                plan.append((field.name, *found))
        _PLANS[cls] = plan
    return plan


def text_kind(info: inspect.Type) -> Kind | None:
    if isinstance(info, inspect.Metadata) and info.extra and MARK in info.extra:
        kind: Kind = info.extra[MARK]
        return kind
    return None


def text_field(info: inspect.Type) -> tuple[Kind, Shape] | None:
    """The text kind of a field's type and where in it the text is (None: no text)."""
    if isinstance(info, inspect.UnionType):
        options = [t for t in info.types if not isinstance(t, inspect.NoneType)]
        if len(options) != 1:
            return None
        info = options[0]
    kind = text_kind(info)
    if kind is not None:
        return kind, "one"
    if isinstance(info, inspect.ListType) and (kind := text_kind(info.item_type)):
        return kind, "list"
    if isinstance(info, inspect.DictType) and (kind := text_kind(info.value_type)):
        return kind, "values"
    return None
