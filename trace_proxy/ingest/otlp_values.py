"""OTLP attribute values as text, for formats whose tags are strings (Zipkin).

The OpenTelemetry spec's "AnyValue representation for non-OTLP protocols" (common/README.md):
strings as they are; booleans `true`/`false`; integers and floats as JSON numbers, the
special floats as `NaN`, `Infinity`, `-Infinity`; bytes in base64; an empty value as the
empty string; arrays and maps as JSON, where the special floats become the JSON strings
"NaN", "Infinity", "-Infinity" and an empty value is `null`.

A float's JSON number is written as JavaScript's JSON.stringify and Go's encoding/json write
it (the shortest digits that read back the same, plain notation from 1e-6 up to 1e21), not as
Python prints it: 1e20 is "100000000000000000000" (Python: "1e+20"), 2.0 is "2" ("2.0").
"""
from __future__ import annotations

import base64
import json
import math
from decimal import Decimal

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_SPECIAL = {math.inf: "Infinity", -math.inf: "-Infinity"}


def float_text(number: float) -> str:
    """A double as a JSON number (JavaScript's Number-to-String); NaN and ±Infinity by name."""
    if number != number:
        return "NaN"
    if number in _SPECIAL:
        return _SPECIAL[number]
    if number == 0:
        return "0"  # -0 too, as JSON.stringify writes it
    # repr gives the shortest round-tripping digits; only their layout differs from JavaScript's.
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + exponent  # the decimal point sits after this many digits
    if len(text) <= point <= 21:
        body = text + "0" * (point - len(text))
    elif 0 < point <= 21:
        body = f"{text[:point]}.{text[point:]}"
    elif -6 < point <= 0:
        body = "0." + "0" * -point + text
    else:
        mantissa = text if len(text) == 1 else f"{text[0]}.{text[1:]}"
        body = f"{mantissa}e{'+' if point > 0 else '-'}{abs(point - 1)}"
    return "-" + body if sign else body


def _json(value: AnyValue) -> str:
    """An array element or map value as JSON text."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return json.dumps(value.string_value, ensure_ascii=False)
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        number = value.double_value
        # JSON has no number for NaN and the infinities: inside JSON they are strings.
        return float_text(number) if math.isfinite(number) else f'"{float_text(number)}"'
    if which == "bytes_value":
        return f'"{base64.b64encode(value.bytes_value).decode()}"'
    if which == "array_value":
        return "[" + ",".join(_json(v) for v in value.array_value.values) + "]"
    if which == "kvlist_value":
        return map_json(value.kvlist_value.values)
    return "null"


def map_json(pairs) -> str:
    """Key-value pairs (a kvlist, an event's attributes) as one JSON object."""
    return "{" + ",".join(f"{json.dumps(kv.key, ensure_ascii=False)}:{_json(kv.value)}" for kv in pairs) + "}"


def text(value: AnyValue) -> str:
    """An attribute value as a Zipkin tag: the spec's string for each type."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return float_text(value.double_value)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if which is None:
        return ""
    return _json(value)
