"""JSON-RPC 2.0 envelopes: parsing and encoding, sans-IO.

Every body is parsed exactly once, by pydantic's JSON validator, into
:class:`Envelope` objects which are then classified.  Ids keep their JSON type, so the
requests ``1`` and ``"1"`` are different (JSON-RPC 2.0 §4).
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Sequence
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, TypeAdapter, ValidationError
from pydantic_core import to_json as _to_json

from .errors import INVALID_REQUEST, PARSE_ERROR, ProtocolError

__all__ = [
    "Envelope",
    "Kind",
    "RequestId",
    "encode_error",
    "encode_notification",
    "encode_request",
    "encode_result",
    "parse_body",
]

RequestId = StrictInt | StrictStr

# RFC 8259 has no NaN or Infinity: a value a handler computes as one goes out as null
# rather than as a body no JSON parser accepts.
to_json = partial(_to_json, inf_nan_mode="null")

# What may hide a non-JSON number in a body the fast parser accepts: the NaN and
# Infinity tokens, or a literal beyond the double range (a 3-digit exponent, or 300+
# digits in a row).  Rare, so only such bodies pay for the strict second look.
_SUSPECT_NUMBER = re.compile(rb"NaN|Infinity|[eE][+-]?[0-9]{3}|[0-9]{300}")


class Kind(enum.Enum):
    REQUEST = "request"
    NOTIFICATION = "notification"
    RESPONSE = "response"


class ErrorObject(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: StrictInt
    message: StrictStr
    data: Any = None


class Envelope(BaseModel):
    """One JSON-RPC message, as received."""

    model_config = ConfigDict(extra="allow")

    jsonrpc: str
    id: RequestId | None = None
    method: StrictStr | None = None
    params: dict[str, Any] | None = None
    result: Any = None
    error: ErrorObject | None = None

    @property
    def kind(self) -> Kind:
        # What _classify() established: a request has a method and an id (never null),
        # a notification a method and no id, a response no method.
        if self.method is None:
            return Kind.RESPONSE
        return Kind.NOTIFICATION if self.id is None else Kind.REQUEST

    @property
    def request_id(self) -> int | str:
        assert self.id is not None
        return self.id


_single = TypeAdapter(Envelope)
_batch = TypeAdapter(list[Envelope])


#: Longest string id accepted.  JSON-RPC sets no bound, but an id is echoed in every
#: answer and tag (each frame of a subscriptions/listen stream carries it): a megabyte
#: id would be a megabyte per frame.
MAX_ID_LENGTH = 1024


def _classify(env: Envelope) -> Envelope:
    fields = env.model_fields_set
    if env.jsonrpc != "2.0":
        raise _invalid('"jsonrpc" must be "2.0"')
    if isinstance(env.id, str) and len(env.id) > MAX_ID_LENGTH:
        raise _invalid(f"id longer than {MAX_ID_LENGTH} characters")
    if env.method is not None:
        if "id" in fields and env.id is None:
            raise _invalid("request id must be a string or an integer, not null")
        if "params" in fields and env.params is None:
            raise _invalid('"params" must be an object')
        return env
    if "method" in fields:
        raise _invalid('"method" must be a string')
    has_result = "result" in fields
    has_error = "error" in fields and env.error is not None
    if env.id is None and not has_error:
        raise _invalid("message is neither a request, a notification nor a response")
    if has_result == has_error:
        raise _invalid('a response carries exactly one of "result" and "error"')
    return env


def _invalid(detail: str) -> ProtocolError:
    return ProtocolError(400, INVALID_REQUEST, f"Invalid Request: {detail}")


def _translate(exc: ValidationError) -> ProtocolError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return ProtocolError(400, PARSE_ERROR, "Parse error: body is not valid JSON")
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return _invalid(f"{where}: {first['msg']}")


def _not_json(token: str) -> Any:
    raise ValueError(token)


def _finite(literal: str) -> float:
    value = float(literal)
    if value in (math.inf, -math.inf):
        raise ValueError(literal)
    return value


def _reject_non_json_numbers(body: bytes) -> None:
    try:
        json.loads(body, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise ProtocolError(400, PARSE_ERROR, "Parse error: body nests too deeply") from None
    except ValueError:
        # Not JSON at all (the parser below says so), or JSON with NaN, Infinity or a
        # number no double holds (RFC 8259 §6).
        raise ProtocolError(
            400,
            PARSE_ERROR,
            "Parse error: body is not valid JSON (RFC 8259 has no NaN, Infinity or overflow)",
        ) from None


def parse_body(body: bytes) -> Envelope | list[Envelope]:
    """Parse a POST body into one envelope or a batch (list) of envelopes.

    Raises :class:`ProtocolError` with -32700 (not JSON, or not UTF-8) or -32600 (not a
    JSON-RPC message), both with HTTP status 400.
    """
    if _SUSPECT_NUMBER.search(body) is not None:
        _reject_non_json_numbers(body)
    stripped = body.lstrip()
    try:
        if stripped[:1] == b"[":
            batch = _batch.validate_json(body)
        else:
            return _classify(_single.validate_json(body))
    except ValidationError as exc:
        raise _translate(exc) from None
    if not batch:
        raise _invalid("empty batch")
    return [_classify(env) for env in batch]


def encode_result(request_id: int | str, result: Any) -> bytes:
    return to_json({"jsonrpc": "2.0", "id": request_id, "result": result})


def encode_error(request_id: int | str | None, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    if request_id is None:
        # The id could not be read; 2025-11-25 allows omitting it, older
        # revisions' schemas want a member, so we send null as JSON-RPC 2.0 does.
        return to_json({"jsonrpc": "2.0", "id": None, "error": error})
    return to_json({"jsonrpc": "2.0", "id": request_id, "error": error})


def encode_notification(method: str, params: dict[str, Any] | None = None) -> bytes:
    if params is None:
        return to_json({"jsonrpc": "2.0", "method": method})
    return to_json({"jsonrpc": "2.0", "method": method, "params": params})


def encode_request(request_id: int | str, method: str, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return to_json(message)


def encode_batch(parts: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(parts) + b"]"
