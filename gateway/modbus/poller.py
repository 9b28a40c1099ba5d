"""Poll a Modbus TCP or RTU station on a schedule (pymodbus async client).

A poll never raises and never invents a value: every point either has a value or is a gap with
the reason (timeout, connection refused, Modbus exception code, bad register content). A failed
poll produces explicit gap records (`value: None`), never a zero.

Reconnects back off exponentially with jitter (tenacity's wait strategy) while the station is
unreachable; scheduled ticks keep producing gap records meanwhile, so the history shows when the
station was silent. Each request is retried `retries` times (tenacity) before it is a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.wait import wait_exponential_jitter

from gateway.modbus.registers import ReadBlock, RegisterMap, decode_block, plan_reads
from sync.logs import get_logger

log = get_logger("gateway.modbus")

Value = float | int | bool

_EXCEPTION_CODES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


@dataclass(frozen=True)
class Station:
    """Where a station is and which register map to poll."""

    name: str  # station id (its meter serial for a bulk meter)
    registers: RegisterMap
    transport: Literal["tcp", "rtu", "rtu-over-tcp"] = "tcp"
    host: str = "127.0.0.1"
    port: int = 502
    serial_port: str = ""
    baudrate: int = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8
    unit_id: int | None = None  # overrides the map's unit id (several stations on one RS-485 bus)
    interval_s: float | None = None  # overrides the map's poll interval


@dataclass
class PollResult:
    station: str
    taken_at: int  # epoch ms when the poll started
    values: dict[str, Value] = field(default_factory=dict)
    gaps: dict[str, str] = field(default_factory=dict)  # point name -> reason
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.gaps


class _ExceptionResponse(Exception):
    """The station answered with a Modbus exception: deterministic, not retried."""


class _Backoff:
    """Exponential backoff with jitter for reconnects, from tenacity's wait strategy."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._wait = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = self.failures
        return float(self._wait(state))

    def reset(self) -> None:
        self.failures = 0


def make_client(station: Station) -> Any:
    """A pymodbus async client with its own reconnect and retries off (we do both)."""
    regs = station.registers
    if station.transport == "rtu":
        return AsyncModbusSerialClient(
            station.serial_port, framer=FramerType.RTU, baudrate=station.baudrate, parity=station.parity,
            stopbits=station.stopbits, bytesize=station.bytesize, timeout=regs.timeout_s, retries=0,
            reconnect_delay=0,
        )
    framer = FramerType.RTU if station.transport == "rtu-over-tcp" else FramerType.SOCKET
    return AsyncModbusTcpClient(
        station.host, port=station.port, framer=framer, timeout=regs.timeout_s, retries=0, reconnect_delay=0
    )


class ModbusPoller:
    """Polls one station. Use `poll_once()` for a single poll, `run()` for the schedule."""

    def __init__(
        self,
        station: Station,
        *,
        clock: Callable[[], float] = time.time,
        client_factory: Callable[[Station], Any] = make_client,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        retry_wait_s: float = 0.05,
    ) -> None:
        self.station = station
        self.blocks: list[ReadBlock] = plan_reads(station.registers.points)
        self._clock = clock
        self._factory = client_factory
        self._client: Any = None
        self._backoff = _Backoff(backoff_initial_s, backoff_max_s)
        self._next_connect = 0.0  # monotonic time before which we do not try to reconnect
        self._retry_wait = retry_wait_s
        self.polls = 0
        self.failed_polls = 0
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return bool(self._client is not None and self._client.connected)

    async def _connect(self) -> str | None:
        """Connect if needed; returns the reason when not connected."""
        if self.connected:
            return None
        now = time.monotonic()
        if now < self._next_connect:
            return f"reconnect backing off ({self._next_connect - now:.1f}s left): {self.last_error}"
        await self._drop()
        client = self._factory(self.station)
        try:
            ok = await asyncio.wait_for(client.connect(), self.station.registers.timeout_s * 2)
        except (TimeoutError, OSError, ModbusException) as exc:
            ok, err = False, f"{type(exc).__name__}: {exc}"
        else:
            err = "connection failed"
        if ok and client.connected:
            self._client = client
            self._backoff.reset()
            return None
        with contextlib.suppress(Exception):
            client.close()
        delay = self._backoff.next_delay()
        self._next_connect = time.monotonic() + delay
        target = self.station.serial_port or f"{self.station.host}:{self.station.port}"
        return f"cannot connect to {target}: {err}"

    async def _drop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    async def _read(self, block: ReadBlock) -> list[Any]:
        client = self._client
        unit = self.station.unit_id if self.station.unit_id is not None else self.station.registers.unit_id
        fn = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coils": client.read_coils,
            "discrete_inputs": client.read_discrete_inputs,
        }[block.function]
        rr = await asyncio.wait_for(
            fn(block.address, count=block.count, device_id=unit), self.station.registers.timeout_s * 1.5
        )
        if rr.isError():
            code = getattr(rr, "exception_code", 0)
            raise _ExceptionResponse(f"modbus exception {code} ({_EXCEPTION_CODES.get(code, 'unknown')})")
        words = rr.bits if block.function in ("coils", "discrete_inputs") else rr.registers
        if len(words) < block.count:
            raise _ExceptionResponse(f"short answer: {len(words)} of {block.count}")
        return list(words[: block.count])

    async def _read_with_retries(self, block: ReadBlock) -> list[Any]:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.station.registers.retries + 1),
            wait=wait_exponential(multiplier=self._retry_wait, max=1.0),
            retry=retry_if_exception_type((ModbusException, TimeoutError, OSError)),
            reraise=True,
        ):
            with attempt:
                return await self._read(block)
        raise AssertionError("unreachable")  # pragma: no cover

    async def poll_once(self) -> PollResult:
        started = time.perf_counter()
        result = PollResult(self.station.name, int(self._clock() * 1000))
        self.polls += 1
        reason = await self._connect()
        if reason is None:
            for block in self.blocks:
                try:
                    words = await self._read_with_retries(block)
                except _ExceptionResponse as exc:
                    self._gap(result, block, str(exc))
                    continue
                except (ModbusException, TimeoutError, OSError) as exc:
                    # the link is in doubt: drop it, the rest of this poll is a gap
                    reason = f"{type(exc).__name__}: {exc}".rstrip(": ") or "timeout"
                    if isinstance(exc, TimeoutError):
                        reason = f"timeout after {self.station.registers.timeout_s}s"
                    await self._drop()
                    self._next_connect = time.monotonic() + self._backoff.next_delay()
                    break
                for p in block.points:
                    i = p.address - block.address
                    try:
                        result.values[p.name] = decode_block(
                            ReadBlock(block.function, p.address, p.width, (p,)), words[i : i + p.width]
                        )[p.name]
                    except ValueError as exc:
                        result.gaps[p.name] = str(exc)
        if reason is not None:
            for block in self.blocks:
                for p in block.points:
                    if p.name not in result.values:
                        result.gaps.setdefault(p.name, reason)
        result.duration_ms = (time.perf_counter() - started) * 1000
        if result.gaps:
            self.failed_polls += 1
            self.last_error = next(iter(result.gaps.values()))
            log.warning("modbus_poll_gap", station=self.station.name, gaps=result.gaps)
        return result

    @staticmethod
    def _gap(result: PollResult, block: ReadBlock, reason: str) -> None:
        for p in block.points:
            result.gaps[p.name] = reason

    async def run(
        self,
        sink: Callable[[PollResult], Awaitable[None] | None],
        stop: asyncio.Event,
        *,
        max_polls: int | None = None,
    ) -> None:
        """Poll every `interval_s` (fixed rate, no drift; a slow poll skips missed ticks) until
        `stop` is set; each result goes to `sink` (store it: values and gaps alike)."""
        interval = self.station.interval_s or self.station.registers.interval_s
        next_tick = time.monotonic()
        done = 0
        try:
            while not stop.is_set():
                res = await self.poll_once()
                out = sink(res)
                if asyncio.iscoroutine(out):
                    await out
                done += 1
                if max_polls is not None and done >= max_polls:
                    return
                next_tick += interval
                now = time.monotonic()
                if next_tick < now:  # overran: skip the missed ticks rather than burst
                    next_tick = now + interval - ((now - next_tick) % interval)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), next_tick - now)
        finally:
            await self.close()

    async def close(self) -> None:
        await self._drop()

