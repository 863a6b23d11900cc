"""Requests a server makes of the client for input (elicitation, sampling, roots): their
shape, the client capability each needs, and what counts as a valid answer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import MISSING_CLIENT_CAPABILITY, McpError

__all__ = ["InputRequest", "answer_is_valid", "require_capabilities"]


_CAPABILITY_OF = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}


def answer_is_valid(method: str, answer: Any) -> bool:
    """Whether ``answer`` has the shape of a result of ``method`` (an input response),
    as far as handlers rely on it (MCP 2025-11-25 schema: ``ElicitResult``,
    ``CreateMessageResult``, ``ListRootsResult``); what a handler then reads of it is
    of the type it expects."""
    if not isinstance(answer, dict):
        return method not in _CAPABILITY_OF
    if method == "elicitation/create":
        # ``content`` only comes with "accept", and is then the submitted form: an object.
        return answer.get("action") in ("accept", "decline", "cancel") and isinstance(
            answer.get("content", {}), dict
        )
    if method == "sampling/createMessage":
        # ``content``: one content block, or (2025-11-25) a list of them.
        content = answer.get("content")
        blocks = content if isinstance(content, list) else [content]
        return isinstance(answer.get("role"), str) and all(isinstance(b, dict) for b in blocks)
    if method == "roots/list":
        roots = answer.get("roots")
        return isinstance(roots, list) and all(
            isinstance(root, dict) and isinstance(root.get("uri"), str) for root in roots
        )
    return True


class InputRequest(dict[str, Any]):
    """A request for input from the client: ``{"method": ..., "params": ...}``."""

    @classmethod
    def elicitation(cls, message: str, requested_schema: Mapping[str, Any], **extra: Any) -> InputRequest:
        params = {"message": message, "requestedSchema": dict(requested_schema), **extra}
        return cls(method="elicitation/create", params=params)

    @classmethod
    def sampling(cls, messages: list[Any], max_tokens: int, **extra: Any) -> InputRequest:
        return cls(
            method="sampling/createMessage",
            params={"messages": messages, "maxTokens": max_tokens, **extra},
        )

    @classmethod
    def roots(cls) -> InputRequest:
        return cls(method="roots/list", params={})

    @property
    def capability(self) -> str:
        """The client capability this request needs."""
        method = str(self["method"])
        return _CAPABILITY_OF.get(method, method)


def require_capabilities(requests: Iterable[InputRequest], capabilities: Mapping[str, Any]) -> None:
    """Raise -32021 naming every capability ``requests`` need that the client lacks."""
    undeclared = sorted({r.capability for r in requests if r.capability not in capabilities})
    if undeclared:
        raise McpError(
            MISSING_CLIENT_CAPABILITY,
            f"Missing required client capability: {', '.join(undeclared)}",
            {"requiredCapabilities": {name: {} for name in undeclared}},
        )
