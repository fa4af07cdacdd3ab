"""JSON Schemas of the handlers' msgspec types, as the router really decodes them.

msgspec writes the schemas; this adds what its decoding enforces and its schemas leave out
(RFC 3339 for datetimes, no U+0000 in any text a request carries), so that a client, or
Schemathesis, reading the schema sends what the router accepts and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import msgspec.inspect

from api.problems import Problem
from api.routing import Endpoint

REF = "#/components/schemas/{name}"
NO_NUL = "^[^\\u0000]*$"
"""Every text the API takes: PostgreSQL cannot hold U+0000 (see ``api.routing``)."""


def component_schemas(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    """Every body's and answer's schema, and the problem's, by name."""
    bodies = [e.body for e in endpoints if e.body is not None]
    answers = [e.response for e in endpoints if is_struct(e.response)]
    every = [Problem, *bodies, *answers]
    _, components = msgspec.json.schema_components(every, ref_template=REF)
    _with_datetime_formats(components, every)
    _, taken = msgspec.json.schema_components(bodies, ref_template=REF)
    return {
        name: without_nul(schema) if name in taken else schema
        for name, schema in sorted(components.items())
    }


def _with_datetime_formats(components: dict[str, Any], types: Sequence[Any]) -> None:
    """Mark datetime fields ``date-time``: msgspec says only ``string``, yet decodes RFC 3339."""
    seen: set[str] = set()
    pending = list(msgspec.inspect.multi_type_info(types))
    while pending:
        info = pending.pop()
        if isinstance(info, msgspec.inspect.StructType):
            name = info.cls.__name__
            if name in seen:
                continue
            seen.add(name)
            for field in info.fields:
                if _is_datetime(field.type) and name in components:
                    _mark_date_time(components[name]["properties"][field.encode_name])
                pending.append(field.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            pending.extend(info.types)
        elif isinstance(info, msgspec.inspect.CollectionType):
            pending.append(info.item_type)
        elif isinstance(info, msgspec.inspect.DictType):
            pending.append(info.value_type)


def _is_datetime(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_datetime(t) for t in info.types)
    return isinstance(info, msgspec.inspect.DateTimeType)


def _mark_date_time(schema: dict[str, Any]) -> None:
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string":
            option["format"] = "date-time"


def without_nul(schema: Any) -> Any:
    """The schema with every free-form string refusing U+0000, as the router does."""
    if isinstance(schema, list):
        return [without_nul(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: without_nul(v) if k != "enum" else v for k, v in schema.items()}
    if result.get("type") == "object" and isinstance(result.get("additionalProperties"), dict):
        result["propertyNames"] = {"pattern": NO_NUL}  # a map's keys are text too
    if result.get("type") == "string" and "format" not in result and "enum" not in result:
        if "pattern" not in result:
            result["pattern"] = NO_NUL
        else:
            result["allOf"] = [{"pattern": NO_NUL}]
    return result


def is_struct(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, msgspec.Struct)


def schema_of(kind: Any) -> dict[str, Any]:
    (schema,), _ = msgspec.json.schema_components([kind], ref_template=REF)
    return dict(schema)


def query_fields(kind: type[msgspec.Struct]) -> list[tuple[str, dict[str, Any], bool]]:
    """Each field of a query struct: its name, its schema as a parameter, and if required."""
    _, components = msgspec.json.schema_components([kind], ref_template=REF)
    _with_datetime_formats(components, [kind])
    struct = components[kind.__name__]
    required = set(struct.get("required", ()))
    fields = []
    for name, schema in struct["properties"].items():
        # A query string cannot carry null: an optional parameter is simply left out.
        options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
        plain = dict(options[0]) if len(options) == 1 else {"anyOf": options}
        if schema.get("default") is not None:
            plain["default"] = schema["default"]
        fields.append((name, without_nul(plain), name in required))
    return fields
