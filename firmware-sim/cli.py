"""`aquacis sim …`: device simulators and fault injection (assembled into `aquacis` by aquacis/cli.py).

Only talks over the wire (MQTT, Modbus TCP) like a real device; imports no other component.
Progress goes to stderr, the JSON summary to stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from firmware_sim.faults import FaultPlan
from firmware_sim.meters import Behaviour

app = typer.Typer(help="Device simulators and fault injection.", no_args_is_help=True)


def _fail(msg: str) -> typer.Exit:
    print(f"error: {msg}", file=sys.stderr)
    return typer.Exit(2)


def _emit(summary: dict[str, object], summary_file: str) -> None:
    text = json.dumps(summary, indent=2, default=str)
    if summary_file:
        with open(summary_file, "w") as f:
            f.write(text + "\n")
    print(text)


def _overrides(base: Behaviour, leak: list[int], leak_lph: float, burst: list[int], backflow: list[int],
               backflow_lph: float, tamper: list[int], stuck: list[int]) -> dict[int, Behaviour]:
    out: dict[int, Behaviour] = {}

    def put(i: int, **kw: object) -> None:
        out[i] = out.get(i, base).merged(**kw)

    for i in leak:
        put(i, leak_lph=leak_lph)
    for i in burst:
        put(i, burst_lph=1500.0)
    for i in backflow:
        put(i, backflow_lph=backflow_lph)
    for i in tamper:
        put(i, tamper=True)
    for i in stuck:
        put(i, stuck=True)
    return out


# Options shared by the MQTT fleet commands.
BROKER = typer.Option("mqtt://127.0.0.1:1883", help="MQTT broker URL, mqtt://host:port (user:password@host allowed).",
                      envvar="AQUACIS_SIM_BROKER")
SEED = typer.Option(None, help="Replay: the same seed gives the same fleet, totals, radio values and "
                    "deduplication ids (a gateway drops the repeat). Without it every run has fresh "
                    "deduplication ids (the seed used is in the summary).", envvar="AQUACIS_SIM_SEED")
ZONE = typer.Option("EXP-01-Z01", help="Zone of the simulated meters (serials WM-{zone}-{index:06d}).",
                    envvar="AQUACIS_SIM_ZONE")
METERS = typer.Option(10, help="Number of simulated water meters.")
INTERVAL = typer.Option(10.0, help="Real seconds between reporting rounds (every meter sends once per round).")
COUNT = typer.Option(0, help="Messages per meter, then exit (0 = run until Ctrl-C).")
FIRST_INDEX = typer.Option(1, help="Index of the first meter (identities are per zone and index).")
SIM_STEP = typer.Option(3600.0, help="Simulated seconds of consumption per round (3600 = hourly meter).")
TIME_MODE = typer.Option("wall", help="Message timestamps: wall (now) or sim (simulated time, a backfill ending now).")
INITIAL_REGISTER = typer.Option(-1, help="Start every register at this many litres (-1 = random); put it near "
                                "the rollover to test wrapping.")
ROLLOVER = typer.Option(100_000_000, help="Register modulus in litres (an 8-digit litre register).")
BATTERY_DECAY = typer.Option(0.01, help="Battery percent lost per simulated day.")
LEAK = typer.Option([], help="Meter index with a leak (continuous flow, also at night); repeatable.")
LEAK_LPH = typer.Option(25.0, help="Leak flow in litres/hour.")
BURST = typer.Option([], help="Meter index with a burst (1500 L/h, burst flag); repeatable.")
BACKFLOW = typer.Option([], help="Meter index running backwards (backflow flag); repeatable.")
BACKFLOW_LPH = typer.Option(40.0, help="Backflow in litres/hour.")
TAMPER = typer.Option([], help="Meter index reporting tampering; repeatable.")
STUCK = typer.Option([], help="Meter index whose register is stuck; repeatable.")
DUPLICATES = typer.Option(0.0, help="Probability a message is delivered twice.")
OUT_OF_ORDER = typer.Option(0.0, help="Probability a message arrives after the next one.")
LATE = typer.Option(0.0, help="Probability a message is held back and sent at the end (late backlog).")
GARBAGE = typer.Option(0.0, help="Probability a garbage payload is sent beside a message.")
SUMMARY_FILE = typer.Option("", help="Also write the JSON summary to this file.")
QUIET = typer.Option(False, help="No progress lines on stderr.")


def _fleet_kwargs(**a: Any) -> dict[str, Any]:
    base = Behaviour(battery_decay_pct_per_day=a["battery_decay"], rollover_l=a["rollover"])
    return dict(
        broker=a["broker"], meters=a["meters"], interval=a["interval"], count=a["count"] or None, seed=a["seed"],
        zone=a["zone"], sim_step=a["sim_step"], time_mode=a["time_mode"], first_index=a["first_index"],
        initial_register_l=None if a["initial_register"] < 0 else a["initial_register"],
        behaviour=base,
        overrides=_overrides(base, a["leak"], a["leak_lph"], a["burst"], a["backflow"], a["backflow_lph"],
                             a["tamper"], a["stuck"]),
        faults=FaultPlan(duplicate=a["duplicates"], out_of_order=a["out_of_order"], late=a["late"],
                         garbage=a["garbage"]),
        quiet=a["quiet"],
    )


@app.command()
def lorawan(
    broker: str = BROKER,
    format: str = typer.Option("chirpstack", "--format", help="Network server format: chirpstack (v4) or tts (v3)."),
    meters: int = METERS,
    interval: float = INTERVAL,
    count: int = COUNT,
    seed: int | None = SEED,
    application_id: str = typer.Option("", help="LNS application id (default: a fixed UUID for ChirpStack, "
                                       "'aquacis-water' for TTS).", envvar="AQUACIS_SIM_APPLICATION_ID"),
    tenant_id: str = typer.Option("", help="ChirpStack tenant id / TTS tenant (default: fixed UUID / 'ttn')."),
    zone: str = ZONE,
    codec: str = typer.Option("aquacis-wm1", help="Payload encoding: aquacis-wm1, em300-di, rwmr or r718h."),
    first_index: int = FIRST_INDEX,
    sim_step: float = SIM_STEP,
    time_mode: str = TIME_MODE,
    fcnt_start: int = typer.Option(0, help="First frame counter of every meter."),
    initial_register: int = INITIAL_REGISTER,
    rollover: int = ROLLOVER,
    battery_decay: float = BATTERY_DECAY,
    leak: list[int] = LEAK,
    leak_lph: float = LEAK_LPH,
    burst: list[int] = BURST,
    backflow: list[int] = BACKFLOW,
    backflow_lph: float = BACKFLOW_LPH,
    tamper: list[int] = TAMPER,
    stuck: list[int] = STUCK,
    duplicates: float = DUPLICATES,
    out_of_order: float = OUT_OF_ORDER,
    late: float = LATE,
    garbage: float = GARBAGE,
    summary_file: str = SUMMARY_FILE,
    quiet: bool = QUIET,
) -> None:
    """Publish LoRaWAN water-meter uplinks as ChirpStack v4 or The Things Stack v3 would (QoS 1).

    The JSON summary (uplinks published, per-meter last totalizer and first/last frame
    counter) is printed to stdout once the broker acknowledged every message.
    """
    from firmware_sim.lorawan import LorawanOptions, run_lorawan

    a = dict(locals())
    try:
        opts = LorawanOptions(format=format, application_id=application_id, tenant_id=tenant_id, codec=codec,
                              fcnt_start=fcnt_start, **_fleet_kwargs(**a))
        summary = run_lorawan(opts)
    except (ValueError, ConnectionError, TimeoutError) as e:
        raise _fail(str(e)) from None
    _emit(summary, summary_file)


@app.command()
def nbiot(
    broker: str = BROKER,
    encoding: str = typer.Option("json", help="Document encoding: json or cbor."),
    unit: str = typer.Option("m3", help="Totalizer unit in the document: m3 (3 decimals) or L (integer)."),
    topic: str = typer.Option("nbiot/{imei}/telemetry", help="Topic template ({imei} and {serial} are replaced).",
                              envvar="AQUACIS_SIM_NBIOT_TOPIC"),
    gateway_id: str = typer.Option("nbiot-core-01", help="gatewayId put in every document."),
    meters: int = METERS,
    interval: float = INTERVAL,
    count: int = COUNT,
    seed: int | None = SEED,
    zone: str = ZONE,
    first_index: int = FIRST_INDEX,
    sim_step: float = SIM_STEP,
    time_mode: str = TIME_MODE,
    initial_register: int = INITIAL_REGISTER,
    rollover: int = ROLLOVER,
    battery_decay: float = BATTERY_DECAY,
    leak: list[int] = LEAK,
    leak_lph: float = LEAK_LPH,
    burst: list[int] = BURST,
    backflow: list[int] = BACKFLOW,
    backflow_lph: float = BACKFLOW_LPH,
    tamper: list[int] = TAMPER,
    stuck: list[int] = STUCK,
    duplicates: float = DUPLICATES,
    out_of_order: float = OUT_OF_ORDER,
    late: float = LATE,
    garbage: float = GARBAGE,
    summary_file: str = SUMMARY_FILE,
    quiet: bool = QUIET,
) -> None:
    """Publish NB-IoT meter telemetry documents (JSON or CBOR) straight to MQTT (QoS 1)."""
    from firmware_sim.nbiot import NbiotOptions, run_nbiot

    a = dict(locals())
    try:
        opts = NbiotOptions(encoding=encoding, unit=unit, topic=topic, gateway_id=gateway_id, **_fleet_kwargs(**a))
        summary = run_nbiot(opts)
    except (ValueError, ConnectionError, TimeoutError) as e:
        raise _fail(str(e)) from None
    _emit(summary, summary_file)


@app.command()
def modbus(
    host: str = typer.Option("127.0.0.1", help="Address to listen on.", envvar="AQUACIS_SIM_MODBUS_HOST"),
    port: int = typer.Option(5020, help="TCP port to listen on (502 needs root).", envvar="AQUACIS_SIM_MODBUS_PORT"),
    profile: str = typer.Option("", help="TOML file with one [[station]] per unit id (default: --stations "
                                "default stations)."),
    stations: int = typer.Option(1, help="Number of default stations (unit ids 1..N) when no profile is given."),
    register_map: str = typer.Option("aquacis-station", help="Map of the default stations: aquacis-station "
                                     "(docs/modbus.md) or aquacis-scada (richer, docs/simulators.md)."),
    speed: float = typer.Option(60.0, help="Simulated seconds per real second (60: a day in 24 minutes)."),
    duration: float = typer.Option(0.0, help="Stop after this many seconds (0 = until Ctrl-C)."),
    seed: int | None = SEED,
    summary_file: str = SUMMARY_FILE,
    quiet: bool = QUIET,
) -> None:
    """Serve simulated SCADA stations over a real Modbus TCP server (register map in docs/simulators.md)."""
    import asyncio

    from firmware_sim.modbus import StationServer, default_stations, load_profile, serve
    from firmware_sim.progress import Progress

    try:
        cfgs = load_profile(profile) if profile else default_stations(stations, register_map)
        if not cfgs:
            raise ValueError("the profile defines no [[station]]")
        srv = StationServer.create(cfgs, seed=seed if seed is not None else 1, speed=speed)
    except ValueError as e:
        raise _fail(str(e)) from None
    prog = Progress("sim modbus", every_s=5.0, quiet=quiet)
    prog.update(f"serving units {[c.unit for c in cfgs]} on {host}:{port}", force=True)
    try:
        asyncio.run(serve(srv, host, port, duration or None, on_progress=prog.update))
    except KeyboardInterrupt:
        pass
    except OSError as e:
        raise _fail(f"cannot serve on {host}:{port}: {e}") from None
    _emit({"kind": "modbus", "host": host, "port": port, "requests": dict(srv.requests),
           "stations": srv.snapshot()}, summary_file)


@app.command()
def scenario(
    file: str = typer.Argument(..., help="Scenario file (TOML), see docs/simulators.md."),
    broker: str = typer.Option("", help="MQTT broker URL; overrides the file's `broker`.", envvar="AQUACIS_SIM_BROKER"),
    summary_file: str = SUMMARY_FILE,
    quiet: bool = QUIET,
) -> None:
    """Replay a scenario file: fleets, faults, pauses and Modbus stations, in order."""
    from firmware_sim import scenario as sc

    try:
        summary = sc.run(file, broker=broker or None, quiet=quiet)
    except (ValueError, ConnectionError, TimeoutError) as e:
        raise _fail(str(e)) from None
    _emit(summary, summary_file)
