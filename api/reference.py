"""A readable API reference, rendered on the server from the OpenAPI document.

One self-contained HTML page: inline CSS, no scripts, no fonts or styles from elsewhere,
so it works on a machine with no internet.
"""

from __future__ import annotations

from html import escape
from typing import Any

_METHODS = ("get", "post", "put", "patch", "delete")
_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem 2rem;
       color: #1d2330; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 2px solid #d8dde8; padding-bottom: .3rem; }
section.op { border: 1px solid #d8dde8; border-radius: 6px; margin: 1rem 0; padding: .2rem 1rem; }
.method { display: inline-block; min-width: 4.2rem; padding: .1rem .4rem; border-radius: 4px;
          color: #fff; font: bold 13px monospace; text-align: center; }
.get { background: #2f6fb5; } .post { background: #2e8b57; } .put { background: #b5772f; }
.patch { background: #8a5cb5; } .delete { background: #b53f3f; }
code, .path { font-family: ui-monospace, monospace; } .path { font-weight: bold; }
table { border-collapse: collapse; margin: .4rem 0 .8rem; }
th, td { border: 1px solid #d8dde8; padding: .2rem .6rem; text-align: left; vertical-align: top; }
th { background: #f3f5f9; } nav ul { columns: 3; } .muted { color: #5d6675; }
"""


def render(document: dict[str, Any]) -> str:
    """The whole page for an OpenAPI 3.1 ``document``."""
    info = document["info"]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document["paths"].items():
        for method in _METHODS:
            if method in item:
                operation = item[method]
                for tag in operation.get("tags") or ["other"]:
                    by_tag.setdefault(tag, []).append((method, path, operation))
    schemas = document.get("components", {}).get("schemas", {})
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(info['title'])} reference</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(info['title'])} <span class=muted>v{escape(info['version'])}</span></h1>",
        f"<p>{escape(info.get('description', ''))}</p>",
        "<p>The machine-readable document is at <code>/v1/openapi.json</code>.</p>",
        "<nav><h2>Contents</h2><ul>",
        *(f'<li><a href="#tag-{_anchor(tag)}">{escape(tag)}</a></li>' for tag in sorted(by_tag)),
        '<li><a href="#schemas">Schemas</a></li></ul></nav>',
    ]
    for tag in sorted(by_tag):
        parts.append(f'<h2 id="tag-{_anchor(tag)}">{escape(tag)}</h2>')
        parts.extend(
            _operation(method, path, _resolved(document, op)) for method, path, op in by_tag[tag]
        )
    parts.append('<h2 id="schemas">Schemas</h2>')
    parts.extend(_schema(name, schema) for name, schema in schemas.items())
    parts.append("</body></html>")
    return "\n".join(parts)


def _resolved(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    """The operation with its shared parameters and responses written out in place."""

    def follow(item: dict[str, Any]) -> dict[str, Any]:
        reference = item.get("$ref", "")
        if not reference.startswith("#/components/") or "/schemas/" in reference:
            return item
        found: Any = document
        for part in reference[2:].split("/"):
            found = found[part]
        return dict(found)

    return {
        **operation,
        "parameters": [follow(p) for p in operation.get("parameters", [])],
        "responses": {s: follow(r) for s, r in operation["responses"].items()},
    }


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    anchor = _anchor(operation.get("operationId", f"{method}-{path}"))
    parts = [
        f'<section class=op id="op-{anchor}">',
        f"<h3><span class='method {method}'>{method.upper()}</span> "
        f"<span class=path>{escape(path)}</span></h3>",
        f"<p>{escape(operation.get('summary', ''))}</p>",
    ]
    if operation.get("description"):
        parts.append(f"<p class=muted>{_code(operation['description'])}</p>")
    if operation.get("security") == []:
        parts.append("<p class=muted>Public: no credentials needed.</p>")
    parameters = operation.get("parameters", [])
    if parameters:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td><td>{_type(p['schema'])}</td>"
            f"<td>{escape(p.get('description', ''))}</td></tr>"
            for p in parameters
        )
        parts.append(
            "<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>Type</th>"
            f"<th>Description</th></tr>{rows}</table>"
        )
    body = operation.get("requestBody")
    if body:
        for media_type, content in body["content"].items():
            parts.append(
                f"<p>Request body (<code>{escape(media_type)}</code>): "
                f"{_type(content['schema'])}</p>"
            )
    rows = "".join(
        f"<tr><td>{escape(status)}</td><td>{escape(response['description'])}</td>"
        f"<td>{_content(response)}</td></tr>"
        for status, response in operation["responses"].items()
    )
    parts.append(f"<table><tr><th>Status</th><th>Meaning</th><th>Body</th></tr>{rows}</table>")
    parts.append("</section>")
    return "\n".join(parts)


def _content(response: dict[str, Any]) -> str:
    return "<br>".join(
        f"<code>{escape(media_type)}</code> {_type(content['schema'])}"
        for media_type, content in response.get("content", {}).items()
    )


def _schema(name: str, schema: dict[str, Any]) -> str:
    parts = [f'<section class=op id="schema-{_anchor(name)}"><h3>{escape(name)}</h3>']
    if schema.get("description"):
        parts.append(f"<p>{escape(schema['description'])}</p>")
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    if properties:
        rows = "".join(
            f"<tr><td><code>{escape(field)}</code></td><td>{_type(definition)}</td>"
            f"<td>{'yes' if field in required else 'no'}</td></tr>"
            for field, definition in properties.items()
        )
        parts.append(f"<table><tr><th>Field</th><th>Type</th><th>Required</th></tr>{rows}</table>")
    else:
        parts.append(f"<p>{_type(schema)}</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _type(schema: dict[str, Any]) -> str:
    """A short, linked rendering of a JSON schema: ``array of TenantView``, ``string ≤ 100``."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{_anchor(name)}">{escape(name)}</a>'
    if "anyOf" in schema:
        return " | ".join(_type(option) for option in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        text = f"array of {_type(schema.get('items', {}))}"
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text = f"map of {_type(schema['additionalProperties'])}"
    else:
        text = escape(kind)
    notes = [
        f"{label} {escape(str(schema[key]))}"
        for key, label in (
            ("format", ""),
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("minLength", "length ≥"),
            ("maxLength", "length ≤"),
            ("pattern", "matching"),
            ("default", "default"),
        )
        if key in schema
    ]
    return text + (
        f" <span class=muted>({', '.join(n.strip() for n in notes)})</span>" if notes else ""
    )


def _code(text: str) -> str:
    """Backticks in descriptions become <code>."""
    pieces = escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())
