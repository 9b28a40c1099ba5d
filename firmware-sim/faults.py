"""Network faults injected between the devices and the broker: duplicates, reordering, late
backlogs and garbage payloads. Pure: the caller publishes what `feed` and `drain` return."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    dev_eui: str = ""
    fcnt: int = -1
    kind: str = "uplink"   # uplink | duplicate | garbage


@dataclass
class FaultPlan:
    duplicate: float = 0.0      # probability an uplink is delivered twice (same bytes)
    out_of_order: float = 0.0   # probability an uplink is held back behind the next one
    late: float = 0.0           # probability an uplink is held until the end (a late backlog)
    garbage: float = 0.0        # probability a garbage payload is sent beside an uplink

    def __post_init__(self) -> None:
        for k, v in self.__dict__.items():
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"fault probability {k}={v} must be within 0..1")

    @property
    def active(self) -> bool:
        return any(self.__dict__.values())


@dataclass
class FaultInjector:
    plan: FaultPlan
    rng: random.Random
    counts: Counter[str] = field(default_factory=Counter)
    _held: Message | None = None
    _backlog: list[Message] = field(default_factory=list)

    def feed(self, m: Message) -> list[Message]:
        out: list[Message] = []
        p = self.plan
        if p.garbage and self.rng.random() < p.garbage:
            out.append(Message(m.topic, garbage(self.rng, m.payload), m.dev_eui, -1, "garbage"))
            self.counts["garbage"] += 1
        if p.late and self.rng.random() < p.late:
            self._backlog.append(m)
            self.counts["late"] += 1
            return out
        if p.out_of_order and self._held is None and self.rng.random() < p.out_of_order:
            self._held = m
            self.counts["reordered"] += 1
            return out
        out.append(m)
        if p.duplicate and self.rng.random() < p.duplicate:
            out.append(Message(m.topic, m.payload, m.dev_eui, m.fcnt, "duplicate"))
            self.counts["duplicates"] += 1
        if self._held is not None:
            out.append(self._held)
            self._held = None
        return out

    def drain(self) -> list[Message]:
        """Everything still held: the reordered one, then the late backlog in original order."""
        out = [self._held] if self._held else []
        self._held = None
        out += self._backlog
        self._backlog = []
        return out


def garbage(rng: random.Random, like: bytes) -> bytes:
    """A payload a broken device, LNS or middlebox might send: truncated, random or bad JSON."""
    kind = rng.randrange(4)
    if kind == 0 and like:
        return like[: rng.randrange(len(like))]
    if kind == 1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
    if kind == 2:
        return json.dumps({"deviceInfo": None, "data": "!!not-base64!!", "fPort": "x"}).encode()
    return b""
