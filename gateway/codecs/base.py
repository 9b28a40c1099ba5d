"""The uniform shape every codec family returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class DecodeResult:
    """What a codec made of one uplink.

    `errors` non-empty means the payload could not be decoded (the caller dead-letters it);
    `warnings` means it was decoded but something looked off (kept with the reading).
    """

    data: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"data": self.data, "warnings": list(self.warnings), "errors": list(self.errors)}


class CodecNotFound(LookupError):
    """The codec reference names no known codec (a configuration error, not a payload error)."""


# A Python decoder: (fPort, payload, variables) -> DecodeResult. It may raise on a malformed
# payload (IndexError, ValueError, ...); `gateway.codecs.decode` turns that into an error.
PythonDecoder = Callable[[int, bytes, Mapping[str, Any]], DecodeResult]
