"""docs/configuration.md is generated from TransportConfig and the command line: this
test fails when they drift apart.  To regenerate the page after changing a setting:

    .venv/bin/python tests/test_configuration_doc.py
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from trio_mcp_http import TransportConfig
from trio_mcp_http.serving.cli import _SPECIAL, build_parser

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
BEGIN = "<!-- generated from TransportConfig: do not edit by hand -->"
END = "<!-- end of generated section -->"


def _default(value: object) -> str:
    if callable(value):
        return f"`{getattr(value, '__name__', repr(value))}`"
    return f"`{value!r}`"


def _flag(name: str) -> str:
    if name in _SPECIAL:
        return {
            "host_policy": "`--allowed-host`, `--allowed-origin`, `--[no-]dns-rebinding-protection`",
            "event_store_factory": "`--[no-]resumability`",
            "request_state_key": "`--request-state-key-file`",
            "auth_verifier": "(Python only)",
        }[name]
    dashed = name.replace("_", "-")
    kind = TransportConfig.__dataclass_fields__[name].type
    return f"`--[no-]{dashed}`" if kind == "bool" else f"`--{dashed}`"


def render() -> str:
    rows = ["| setting | default | command line | meaning |", "|---|---|---|---|"]
    for field in dataclasses.fields(TransportConfig):
        meaning = field.metadata.get("help", "").replace("|", "\\|")
        rows.append(f"| `{field.name}` | {_default(field.default)} | {_flag(field.name)} | {meaning} |")
    serve_parser = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    serving = next(g for g in serve_parser._action_groups if g.title == "serving")
    flags = ["| flag | default | meaning |", "|---|---|---|"]
    for action in serving._group_actions:
        names = ", ".join(f"`{o}`" for o in action.option_strings)
        default = "" if action.default in (None, [], False) else f"`{action.default}`"
        flags.append(f"| {names} | {default} | {action.help} |")
    return "\n".join(
        [
            BEGIN,
            "",
            "### `TransportConfig`",
            "",
            *rows,
            "",
            "### Serving flags of `trio-mcp-http serve`",
            "",
            *flags,
            "",
            END,
        ]
    )


def _current() -> tuple[str, str, str]:
    text = PAGE.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head, text, tail


def test_the_configuration_reference_is_up_to_date() -> None:
    head, text, tail = _current()
    assert BEGIN in text
    assert END in text
    expected = head + render() + tail
    assert text == expected, "docs/configuration.md is stale: run `python tests/test_configuration_doc.py`"


if __name__ == "__main__":
    head, _, tail = _current()
    PAGE.write_text(head + render() + tail)
    sys.exit(0)
