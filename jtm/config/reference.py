"""The params reference: one table per params.yaml section, made from the JSON Schema (types,
allowed names, ranges), params.yaml itself (defaults and their comments) and the stage table
(which stages a key reruns). The documentation site renders it (docs/hooks/params_reference.py);
nothing is kept by hand.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import yaml

from jtm.config.schema import bounds_in_words, params_schema

_KEY = re.compile(r"^  (\w+):\s*(.*?)\s*(?:#\s?(.*))?$")
_SECTION = re.compile(r"^(\w+):")
CONTINUED = 20  # a comment line indented this far continues the trailing comment of the key above


def comments(params_file: Path) -> dict[str, str]:
    """{"section.key": its comment}: the comment on the key's line, after the comment lines just
    above it, with the comment lines indented under its comment that follow it. A comment
    followed by a blank line is a heading, nobody's description."""
    found: dict[str, str] = {}
    section, above, last = None, [], None
    for line in params_file.read_text().splitlines():
        stripped = line.strip()
        if _SECTION.match(line):
            section, above, last = _SECTION.match(line).group(1), [], None
        elif stripped.startswith("#") and section:
            text = stripped.lstrip("#").strip()
            if len(line) - len(line.lstrip()) >= CONTINUED and last:  # continues the key above
                found[last] = f"{found[last]} {text}".strip()
            else:
                above.append(text)
        elif (m := _KEY.match(line)) and section:
            last = f"{section}.{m.group(1)}"
            found[last] = " ".join(above + [m.group(3) or ""]).strip()
            above = []
        elif not stripped:
            above = []
    return found


def describe(schema: dict) -> str:
    """A property's schema in a few words: `int >= 1`, `one of: a, b`, `list of number`."""
    if "anyOf" in schema:
        return " or ".join(describe(s) for s in schema["anyOf"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return "one of: " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        inner = schema.get("items") or {"anyOf": schema.get("prefixItems", [])}
        return f"list of {describe(inner)}"
    bounds = bounds_in_words(schema)
    return " ".join([{"integer": "int", "number": "number", "boolean": "bool"}.get(kind, kind)] + bounds)


def _value(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return f"`{text}`" if len(text) <= 40 else f"`{text[:37]}...`"


def reference(params_file: Path, reruns: dict[str, list[str]]) -> str:
    """The reference's Markdown: a heading and a table per section. `reruns`: "section.key" ->
    the stages whose cache it invalidates."""
    schema = params_schema()["properties"]
    defaults = yaml.safe_load(params_file.read_text())
    notes = comments(params_file)
    out = []
    for section, node in schema.items():
        out += [
            f"## `{section}`",
            "",
            "| key | allowed | default | reruns | what it is |",
            "|---|---|---|---|---|",
        ]
        for key, prop in node["properties"].items():
            dotted = f"{section}.{key}"
            cells = [
                f'<code class="param-key">{key}</code>',  # docs/stylesheets/extra.css: never broken
                describe(prop),
                _value(defaults.get(section, {}).get(key)),
                ", ".join(f"`{s}`" for s in reruns.get(dotted, [])) or "–",
                html.escape(notes.get(dotted, ""), quote=False).replace("|", "\\|"),  # "run<r>/" shows
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)
