"""Tools whose arguments a JSON Schema describes: offered as given, checked like pydantic's.

The same rules as for @tool functions: a bad argument is a ToolArgsError naming its field
(an invalid_args observation in a run, nothing called), extra properties are refused unless
the schema allows them, NaN and infinities are refused unless the tool allows them. A
schema's patterns are searched in linear time (RE2), whatever the model writes.
"""

from __future__ import annotations

import http.server
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import StructuredTool

from agentrt import AgentRuntime, Policy, Principal
from agentrt.errors import ConfigError
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools import ToolArgsError, ToolContext, ToolRunner, ToolSpec, schema_tool, tool

CTX = ToolContext(thread_id="t", step_id="1.0", idempotency_key="k", principal=Principal("p"))

REFUND = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "description": "The order."},
        "amount": {"type": "number", "minimum": 0},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                "required": ["sku"],
            },
        },
    },
    "required": ["order_id", "amount"],
}


def refund_tool(schema: dict[str, Any] = REFUND, **options: Any) -> ToolSpec:
    def refund(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"refunded": args["amount"], "key": ctx.idempotency_key}

    return schema_tool(refund, name="refund", description="Refund.", schema=schema, **options)


def problems(spec: ToolSpec, args: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ToolArgsError) as info:
        spec.validate_args(args)
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors]


def test_the_schema_is_offered_closed_to_extra_properties() -> None:
    spec = refund_tool()
    assert spec.schema() == {
        "type": "function",
        "function": {
            "name": "refund",
            "description": "Refund.",
            "parameters": {**REFUND, "additionalProperties": False},
        },
    }
    assert (spec.effect, spec.args_model, spec.output) == ("write", None, None)


def test_good_arguments_come_back_in_json_form_and_run() -> None:
    spec = refund_tool()
    args = spec.validate_args({"order_id": "o1", "amount": 5, "lines": ({"sku": "a"},)})
    assert args == {"order_id": "o1", "amount": 5, "lines": [{"sku": "a"}]}
    assert ToolRunner().call(spec, args, CTX).result == {"refunded": 5, "key": "k"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"order_id": "o1", "amount": "5"}, [(("amount",), "Input is not of type 'number'")]),
        (
            {"order_id": "o1", "amount": -1},
            [(("amount",), "Input is less than the minimum of 0")],
        ),
        ({"amount": 1}, [(("order_id",), "Field required")]),
        ({}, [(("order_id",), "Field required"), (("amount",), "Field required")]),
        (
            {"order_id": "o1", "amount": 1, "admin": True},
            [(("admin",), "Extra inputs are not permitted")],
        ),
        (
            {"order_id": "o1", "amount": 1, "lines": [{"sku": "a"}, {"qty": "2"}]},
            [
                (("lines", 1, "sku"), "Field required"),
                (("lines", 1, "qty"), "Input is not of type 'integer'"),
            ],
        ),
        (
            {"order_id": "o1", "amount": math.inf},
            [(("amount",), "Input should be a finite number")],
        ),
        (
            {"order_id": "o1", "amount": 1, "lines": [{"sku": "a", "qty": 1, "w": math.nan}]},
            [(("lines", 0, "w"), "Input should be a finite number")],
        ),
        (["o1", 5], [((), "arguments must be a JSON object")]),
    ],
    ids=[
        "wrong-type",
        "minimum",
        "missing",
        "both-missing",
        "extra",
        "nested",
        "infinity",
        "nested-nan",
        "not-an-object",
    ],
)
def test_bad_arguments_name_the_field(args: Any, expected: list[Any]) -> None:
    spec = refund_tool()
    found = problems(spec, args)
    assert sorted(found, key=str) == sorted(expected, key=str)


def test_the_error_message_reads_like_a_pydantic_tools() -> None:
    with pytest.raises(ToolArgsError) as info:
        refund_tool().validate_args({"order_id": "o1", "amount": "five"})
    assert str(info.value) == (
        "arguments for tool 'refund' do not match its schema: amount: Input is not of type "
        "'number' (got 'five'). Call it again with arguments that match the schema."
    )


LOCK = {
    "type": "object",
    "properties": {"door": {"type": "string"}, "pin": {"type": "string"}},
    "required": ["door", "pin"],
}
PIN = "zebra-58213-quartz-marble-77120-otter-lantern-99341-copper"


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        pytest.param(
            {"pin": PIN},
            "door: Field required (got {'pin': '[REDACTED:field]'})",
            id="whole-arguments-quoted",
        ),
        pytest.param(
            {"door": "front", "pin": 58213},
            "pin: Input is not of type 'string' (the value is not shown: the field is sensitive)",
            id="at-the-sensitive-field",
        ),
        pytest.param(
            # not declared, but a key name the Redactor always masks
            {"door": "front", "pin": "x", "password": "zebra\\58213"},
            "password: Extra inputs are not permitted "
            "(the value is not shown: the field is sensitive)",
            id="an-extra-field-sensitive-by-its-name",
        ),
    ],
)
def test_an_invalid_args_error_never_quotes_a_sensitive_argument(args: Any, detail: str) -> None:
    spec = schema_tool(
        lambda args, ctx: None,
        name="unlock",
        description="Unlock.",
        schema=LOCK,
        sensitive=["pin"],
    )
    with pytest.raises(ToolArgsError) as info:
        spec.validate_args(args)
    assert str(info.value) == (
        f"arguments for tool 'unlock' do not match its schema: {detail}. Call it again with "
        "arguments that match the schema."
    )
    assert "58213" not in str(info.value)


def test_a_schema_may_allow_extra_properties_and_a_tool_non_finite_numbers() -> None:
    open_schema = {**REFUND, "additionalProperties": {"type": "string"}}
    spec = refund_tool(open_schema, allow_non_finite=True)
    assert spec.validate_args({"order_id": "o1", "amount": math.inf, "note": "x"})["note"] == "x"
    assert problems(spec, {"order_id": "o1", "amount": 1, "note": 2}) == [
        (("note",), "Input is not of type 'string'")
    ]
    assert spec.schema()["function"]["parameters"]["additionalProperties"] == {"type": "string"}


def test_a_composed_schema_is_closed_with_unevaluated_properties() -> None:
    composed = {
        "type": "object",
        "allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}],
        "properties": {"b": {"type": "string"}},
    }
    spec = refund_tool(composed)
    assert spec.validate_args({"a": 1, "b": "x"}) == {"a": 1, "b": "x"}
    assert problems(spec, {"a": 1, "c": 2}) == [
        ((), "Unevaluated properties are not allowed ('c' was unexpected)")
    ]


def test_a_value_json_cannot_carry_is_invalid() -> None:
    assert problems(refund_tool(), {"order_id": "o1", "amount": 1, "lines": {1, 2}})[0][1] == (
        "arguments must be JSON values (Object of type set is not JSON serializable)"
    )


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {"type": "array"},
            "tool 'refund': its argument schema has type 'array'; a tool's arguments are a JSON "
            "object of named values, so the schema's type must be 'object'",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "nope"}}},
            "tool 'refund': its argument schema is not a valid JSON Schema at properties/a/type:",
        ),
        (
            {"type": "object", "default": object},
            "tool 'refund': its argument schema is not JSON (",
        ),
        ("{}", "tool 'refund': its argument schema must be a JSON Schema object (a dict), got"),
    ],
    ids=["not-an-object", "invalid", "not-json", "a-string"],
)
def test_a_bad_schema_is_a_config_error(schema: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        refund_tool(schema)
    assert str(info.value).startswith(message)


NOWHERE = (
    "points nowhere (no such place in the schema, and nothing is fetched); define what it "
    "names (under $defs, or definitions before draft 2019-09), or write that subschema in "
    "its place"
)


@pytest.mark.parametrize(
    ("schema", "ref"),
    [
        ({"properties": {"order": {"$ref": "#/$defs/order"}}}, "#/$defs/order"),
        (
            {"$defs": {"order": {"type": "string"}}, "properties": {"o": {"$ref": "#/$defs/ordr"}}},
            "#/$defs/ordr",
        ),
        ({"properties": {"o": {"items": {"$ref": "#order"}}}}, "#order"),
        (
            # Under a $id, "#/..." is that subschema's own: it has no $defs of its own.
            {
                "$defs": {
                    "order": {
                        "$id": "https://example.com/order",
                        "properties": {"q": {"$ref": "#/$defs/qty"}},
                    }
                },
                "properties": {"o": {"$ref": "https://example.com/order"}},
            },
            "#/$defs/qty",
        ),
        (
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "properties": {"o": {"$ref": "#/definitions/order"}},
            },
            "#/definitions/order",
        ),
        ({"properties": {"o": {"$dynamicRef": "#/$defs/node"}}}, "#/$defs/node"),
    ],
    ids=["no-defs", "misspelt", "anchor", "under-an-id", "draft-7", "dynamic"],
)
def test_a_schema_whose_ref_points_nowhere_is_refused_when_the_tool_is_made(
    schema: dict[str, Any], ref: str
) -> None:
    # Made, it would fail every run that calls it, with jsonschema's own error (no
    # ValidationError, so no invalid_args) at the first value checked.
    with pytest.raises(ConfigError) as info:
        refund_tool(schema)
    assert str(info.value) == f"tool 'refund': its argument schema's $ref {ref!r} {NOWHERE}"


ELSEWHERE = NOWHERE.replace("no such place in the schema", "it names another document")


@pytest.fixture
def schema_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that answers every GET with a schema: its URL, and the paths
    asked of it (what a tool's making would have fetched)."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("schema", "ref"),
    [
        ({"properties": {"o": {"$ref": "URL/internal/secret.json"}}}, "URL/internal/secret.json"),
        ({"$id": "URL/tool.json", "properties": {"o": {"$ref": "order.json"}}}, "order.json"),
        ({"properties": {"o": {"$dynamicRef": "URL/node.json"}}}, "URL/node.json"),
        (
            # Under a keyword no one reads, a pointer still leads the validator to it.
            {"x-kept": {"$ref": "URL/kept.json"}, "properties": {"o": {"$ref": "#/x-kept"}}},
            "URL/kept.json",
        ),
        (
            {"properties": {"o": {"$ref": "https://example.com/order.json"}}},
            "https://example.com/order.json",
        ),
    ],
    ids=["url", "relative-to-an-id", "dynamic", "through-a-pointer", "another-host"],
)
def test_a_ref_to_another_document_is_refused_and_nothing_is_fetched(
    schema_server: tuple[str, list[str]], schema: dict[str, Any], ref: str
) -> None:
    # jsonschema's default registry fetches any URL (no timeout): an MCP server's tool list
    # made the runtime request internal addresses as it was built.
    url, asked = schema_server
    schema = json.loads(json.dumps(schema).replace("URL", url))
    ref = ref.replace("URL", url)
    with pytest.raises(ConfigError) as info:
        refund_tool(schema)
    assert str(info.value) == f"tool 'refund': its argument schema's $ref {ref!r} {ELSEWHERE}"
    assert asked == []


def test_a_ref_to_a_server_that_never_answers_is_refused_at_once() -> None:
    # A server that takes the connection and says nothing held the runtime's making forever.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # never accepted, never answered
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.json"
    outcome: list[BaseException] = []

    def make() -> None:
        with pytest.raises(ConfigError, match="points nowhere") as info:
            refund_tool({"properties": {"o": {"$ref": url}}})
        outcome.append(info.value)

    maker = threading.Thread(target=make, daemon=True)
    maker.start()
    maker.join(timeout=5)  # at once when nothing is fetched: the timeout is a failure's only
    listener.close()
    assert outcome, "making a tool whose $ref names a silent server still waits after 5 s"


def test_the_validators_tools_make_fetch_nothing_either(
    schema_server: tuple[str, list[str]],
) -> None:
    from jsonschema.validators import Draft202012Validator
    from referencing.exceptions import Unresolvable

    from agentrt.tools.schema_patterns import bounded_validator, local_validator

    url, asked = schema_server
    schema = {"properties": {"o": {"$ref": f"{url}/o.json"}}}
    validator = local_validator(bounded_validator(schema), schema)
    # (Such a schema is refused when a tool is made: this is the line behind that.)
    with pytest.raises(Unresolvable):
        validator.is_valid({"o": 1})
    assert asked == []
    # The meta-schemas are at hand, without a fetch.
    meta = {"$ref": "https://json-schema.org/draft/2020-12/schema"}
    assert local_validator(Draft202012Validator, meta).is_valid({"type": "string"})


def test_a_ref_that_resolves_is_followed_and_a_bad_output_schema_checks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from agentrt.tools.mcp.contracts import output_type

    spec = refund_tool(
        {
            "$defs": {
                "qty": {"$anchor": "qty", "type": "integer"},
                "line": {
                    "$id": "https://example.com/line",
                    "$defs": {"sku": {"type": "string"}},
                    # "#..." under a $id is that subschema's own, where $defs/sku is
                    "properties": {"sku": {"$ref": "#/$defs/sku"}},
                },
            },
            "properties": {
                "line": {"$ref": "https://example.com/line"},
                "n": {"$ref": "#qty"},
                "meta": {"$ref": "https://json-schema.org/draft/2020-12/schema"},
            },
        }
    )
    assert spec.validate_args({"line": {"sku": "a1"}, "n": 2}) == {"line": {"sku": "a1"}, "n": 2}
    assert problems(spec, {"line": {"sku": 1}, "n": "2"}) == [
        (("line", "sku"), "Input is not of type 'string'"),
        (("n",), "Input is not of type 'integer'"),
    ]
    # A server's outputSchema whose $ref points nowhere: its results are not checked, said
    # once, rather than every call failing its run.
    assert output_type("odd", "get", {"$ref": "#/$defs/x"}) is Any
    assert "outputSchema of tool 'get' is not valid JSON Schema ($ref '#/$defs/x'" in caplog.text


EVIL = "^(a|a)*$"
"""Exponential for a backtracking engine on EVIL_TEXT: hours of Python's re, holding the GIL."""
EVIL_TEXT = "a" * 40 + "!"


@pytest.fixture
def no_backtracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """jsonschema's own pattern searches (Python's re) fail the test, at once, if used."""
    import jsonschema._keywords
    import jsonschema._legacy_keywords
    import jsonschema._utils

    class Refused:
        def search(self, pattern: str, text: str) -> None:
            raise AssertionError(f"Python's backtracking re searched {pattern!r}")

    for module in (jsonschema._keywords, jsonschema._utils, jsonschema._legacy_keywords):
        monkeypatch.setattr(module, "re", Refused())


@pytest.mark.usefixtures("no_backtracking")
def test_patterns_are_searched_in_linear_time_whatever_the_model_writes() -> None:
    spec = refund_tool(
        {
            "type": "object",
            "properties": {"s": {"type": "string", "pattern": EVIL}},
            "patternProperties": {"^x(a|a)*$": {"type": "integer"}},
        }
    )
    assert spec.validate_args({"s": "aaa", "xaa": 1}) == {"s": "aaa", "xaa": 1}
    assert problems(spec, {"s": EVIL_TEXT}) == [(("s",), f"Input does not match {EVIL!r}")]
    assert problems(spec, {"xaa": "one"}) == [(("xaa",), "Input is not of type 'integer'")]
    assert problems(spec, {f"x{EVIL_TEXT}": 1}) == [
        ((f"x{EVIL_TEXT}",), "Extra inputs are not permitted")
    ]
    # Closed with unevaluatedProperties, which reads patternProperties too.
    composed = refund_tool({"allOf": [{"patternProperties": {"^x(a|a)*$": {"type": "integer"}}}]})
    assert composed.validate_args({"xaa": 1}) == {"xaa": 1}
    assert problems(composed, {f"x{EVIL_TEXT}": 1}) == [
        ((), f"Unevaluated properties are not allowed ('x{EVIL_TEXT}' was unexpected)")
    ]


def test_patterns_keep_json_schema_rules_and_one_re2_cannot_run_is_refused() -> None:
    spec = refund_tool(
        {
            "type": "object",
            "properties": {
                "code": {"type": "string", "pattern": "[0-9]{3}"},
                "name": {"type": "string", "pattern": "^\\u0041\\w*$"},
            },
        }
    )
    # Searched for, not matched whole; ECMA-262's \uXXXX escape; $ is the text's end (as in
    # ECMA-262, where Python's re also matches before a last newline).
    assert spec.validate_args({"code": "ab123cd", "name": "Ab_c"}) == {
        "code": "ab123cd",
        "name": "Ab_c",
    }
    assert problems(spec, {"code": "12", "name": "Abc\n"}) == [
        (("code",), "Input does not match '[0-9]{3}'"),
        (("name",), "Input does not match '^\\\\u0041\\\\w*$'"),
    ]
    # A pattern RE2 cannot run (a lookaround, a backreference, a repeat past {1000}) runs
    # on the backtracking engine, each value cut at BACKTRACKING_SECONDS.
    spec = refund_tool(
        {
            "type": "object",
            "properties": {
                "pin": {"type": "string", "pattern": "^(?=.*[0-9])[a-z0-9]+$"},
                "note": {"type": "string", "pattern": "^.{1,5000}$"},
                "twice": {"type": "string", "pattern": "^(a+)\\1$"},
                "slow": {"type": "string", "pattern": "^(?=a)(a|a)*$"},
            },
        }
    )
    assert spec.validate_args({"pin": "ab1", "note": "n", "twice": "aaaa"})["twice"] == "aaaa"
    assert problems(spec, {"pin": "ab", "note": "", "twice": "aaa"}) == [
        (("pin",), "Input does not match '^(?=.*[0-9])[a-z0-9]+$'"),
        (("note",), "Input does not match '^.{1,5000}$'"),
        (("twice",), "Input does not match '^(a+)\\\\1$'"),
    ]
    started = time.monotonic()
    assert problems(spec, {"slow": "a" * 40 + "!"}) == [
        (
            ("slow",),
            "pattern '^(?=a)(a|a)*$' could not decide this value within 0.05 s (it has a "
            "lookaround, a backreference or a repeat past {1000}, so it runs on a "
            "backtracking engine): the value is refused",
        )
    ]
    assert time.monotonic() - started < 5  # cut short, not hours
    # A pattern no engine reads is refused as the tool is made.
    with pytest.raises(ConfigError) as info:
        refund_tool({"type": "object", "properties": {"pin": {"pattern": "(ab"}}})
    assert str(info.value).startswith(
        "tool 'refund': its argument schema is not a valid JSON Schema at "
        "properties/pin/pattern: pattern '(ab' is not a regular expression: "
    )


@pytest.mark.parametrize(
    ("pattern", "value", "valid"),
    [
        ("^[a-z]+$", "bob\n", False),  # $ is the text's end, not also before a last newline
        ("^[a-z]+$", "bob", True),
        ("^[a-z]+$|^-$", "-\n", False),
        ("^[$a-z]+$", "b$b", True),  # a $ in a class, or escaped, is the character
        ("^\\$[a-z]+$", "$ab", True),
        ("^\\d+$", "\u0661\u0662", False),  # \d, \w are ASCII's, as in ECMA-262 and RE2
        ("^\\w+$", "caf\u00e9", False),
        ("^\\S+$", "a\x1cb", True),  # \s is ECMA-262's whitespace, which \x1c is not
        ("^\\S+$", "a\u3000b", False),
        ("^[\\S]+$", "a\u00a0b", False),  # \S in a class too: it took the no-break space
        ("^[\\S\\d]+$", "a\u2028b", False),
        ("^[\\S]+$", "a\U0001f600\x1cb", True),
        ("^[^\\S]+$", "\u00a0\u3000", True),
        ("^[^\\S]+$", " a", False),
        ("^[!-\\s]+$", "!-\u00a0", True),  # by ECMA-262 (Annex B): "!", "-" and \s, no range
        ("^[!-\\s]+$", "a", False),
        ("^[\\S-]+$", "a-", True),
        ("^[\\s-~]+$", "- ~", True),
        ("^[\\s-~]+$", "a", False),
    ],
)
def test_a_pattern_reads_the_same_on_either_engine(pattern: str, value: str, valid: bool) -> None:
    # A lookahead sends a pattern to the backtracking engine (RE2 has none): the guard
    # "not admin" must not change what else the pattern takes ("bob\n" got through).
    guarded = "^(?!admin)" + pattern.removeprefix("^")
    for each in (pattern, guarded):
        spec = refund_tool({"type": "object", "properties": {"user": {"pattern": each}}})
        if valid:
            assert spec.validate_args({"user": value}) == {"user": value}, each
        else:
            assert problems(spec, {"user": value}) == [
                (("user",), f"Input does not match {each!r}")
            ], each


@pytest.mark.parametrize("space", ["\u00a0", "\x0b", "\u2028", "\u3000", "\ufeff", " "])
def test_backslash_s_is_ecma_262s_whitespace_as_it_was_on_pythons_re(space: str) -> None:
    # RE2's \s is ASCII's whitespace alone: a "no whitespace" field would take a no-break
    # space. Read as ECMA-262's, outside a class and inside one; [\s\S] is still anything.
    spec = refund_tool(
        {
            "type": "object",
            "properties": {
                "user": {"type": "string", "pattern": "^\\S+$"},
                "code": {"type": "string", "pattern": "^[^\\s]+$"},
                "gap": {"type": "string", "pattern": "a\\sb"},
                "any": {"type": "string", "pattern": "^x[\\s\\S]y$"},
            },
        }
    )
    text = f"a{space}b"
    assert problems(spec, {"user": text, "code": text}) == [
        (("user",), "Input does not match '^\\\\S+$'"),
        (("code",), "Input does not match '^[^\\\\s]+$'"),
    ]
    assert spec.validate_args({"gap": text, "any": f"x{space}y"}) == {
        "gap": text,
        "any": f"x{space}y",
    }
    assert spec.validate_args({"user": "ab", "code": "ab", "any": "x\ny"})["any"] == "x\ny"


ECMA_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
"""ECMA-262's whitespace at each edge of its ranges (U+2000 to U+200A is one)."""


@pytest.mark.parametrize("guard", ["", "(?!x)"], ids=["re2", "backtracking"])
def test_backslash_s_and_S_in_a_class_are_what_they_are_outside_one(guard: str) -> None:
    from agentrt.tools.schema_patterns import search

    # Each whitespace code point and those next to it, the ends of Unicode, a lone surrogate.
    points = {0, 0x10FFFF, 0xD800} | {
        near for c in ECMA_SPACE for near in (ord(c) - 1, ord(c), ord(c) + 1)
    }
    for char in map(chr, sorted(points)):
        space = char in ECMA_SPACE or "\u2000" <= char <= "\u200a"
        for pattern, takes in [
            ("\\s", space),
            ("[\\s]", space),
            ("[^\\S]", space),
            ("\\S", not space),
            ("[\\S]", not space),
            ("[^\\s]", not space),
            ("[\\S\\s]", True),
            ("[^\\S\\s]", False),
        ]:
            assert search(f"^{guard}{pattern}$", char) is takes, (pattern, char)


def test_a_spec_describes_its_arguments_exactly_once() -> None:
    import dataclasses

    with pytest.raises(ConfigError, match=r"^tool 'refund': describe its arguments once"):
        dataclasses.replace(refund_tool(), args_model=tool(lambda: None).args_model)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["pydantic", "json-schema"])
def test_calling_swaps_the_work_for_either_kind_of_schema(kind: str) -> None:
    @tool
    def add(a: int, b: int = 1) -> int:
        """Add."""
        return a + b

    plus = refund_tool() if kind == "json-schema" else add
    args = {"order_id": "o1", "amount": 2} if kind == "json-schema" else {"a": 2}
    seen: list[tuple[dict[str, Any], str]] = []
    stub = plus.calling(lambda a, ctx: seen.append((a, ctx.idempotency_key)) or "stubbed")
    assert ToolRunner().call(stub, plus.validate_args(args), CTX).result == "stubbed"
    assert seen == [(plus.validate_args(args), "k")]


# LangChain tools with a dict args_schema -----------------------------------------------------


def test_a_langchain_tool_with_a_dict_schema_is_offered_and_checked(db: Path) -> None:
    refunds: list[dict[str, Any]] = []

    def refund(**kwargs: Any) -> str:
        refunds.append(kwargs)
        return "refunded"

    lc = StructuredTool.from_function(
        refund, name="refund", description="Refund an order.", args_schema=REFUND
    )
    model = ScriptedChatModel(
        [
            ai("", tool_call("refund", {"order_id": "o1", "amount": 5})),
            ai("", tool_call("refund", {"order_id": "o2", "amount": "lots"})),
            ai("", tool_call("refund", {"order_id": "o3", "amount": 1, "admin": True})),
            "done",
        ]
    )
    with AgentRuntime(model, tools=[lc], policy=Policy.allow_all(), db=db) as rt:
        spec = rt.tools.get("refund")
        assert spec is not None
        assert spec.schema()["function"] == {
            "name": "refund",
            "description": "Refund an order.",
            "parameters": {**REFUND, "additionalProperties": False},
        }
        run = rt.start("refund", principal=Principal("p"))
        seen = [
            (e["data"]["kind"], e["data"]["content"])
            for e in rt.events(run.thread_id)
            if e["type"] == "observation"
        ]
    assert model.calls[0].tool_names == ("refund",)
    assert refunds == [{"order_id": "o1", "amount": 5}]  # nothing else ran
    assert seen[0] == ("ok", "refunded")
    assert [kind for kind, _ in seen[1:]] == ["invalid_args", "invalid_args"]
    assert "amount: Input is not of type 'number' (got 'lots')" in seen[1][1]
    assert "admin: Extra inputs are not permitted (got True)" in seen[2][1]
