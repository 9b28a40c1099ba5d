"""`aquacis sim …`: device simulators and fault injection (assembled into `aquacis` by aquacis/cli.py).

Only talks over the wire (MQTT, Modbus TCP) like a real device; imports no other component.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

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


BROKER = typer.Option("mqtt://127.0.0.1:1883", help="MQTT broker URL, mqtt://host:port (user:password@host allowed).",
                      envvar="AQUACIS_SIM_BROKER")
SEED = typer.Option(1, help="Random seed: same seed, same fleet, totals and radio values.", envvar="AQUACIS_SIM_SEED")
ZONE = typer.Option("EXP-01-Z01", help="Zone of the simulated meters (serials WM-{zone}-{index:06d}).",
                    envvar="AQUACIS_SIM_ZONE")


@app.command()
def lorawan(
    broker: str = BROKER,
    format: str = typer.Option("chirpstack", "--format", help="Network server format: chirpstack (v4) or tts (v3)."),
    meters: int = typer.Option(10, help="Number of simulated water meters."),
    interval: float = typer.Option(10.0, help="Real seconds between reporting rounds (every meter sends once per round)."),
    count: int = typer.Option(0, help="Uplinks per meter, then exit (0 = run until Ctrl-C)."),
    seed: int = SEED,
    application_id: str = typer.Option("", help="LNS application id (default: a fixed UUID for ChirpStack, "
                                       "'aquacis-water' for TTS).", envvar="AQUACIS_SIM_APPLICATION_ID"),
    tenant_id: str = typer.Option("", help="ChirpStack tenant id / TTS tenant (default: fixed UUID / 'ttn')."),
    zone: str = ZONE,
    codec: str = typer.Option("aquacis-wm1", help="Payload encoding: aquacis-wm1, em300-di, rwmr or r718h."),
    first_index: int = typer.Option(1, help="Index of the first meter (identities are per zone and index)."),
    sim_step: float = typer.Option(3600.0, help="Simulated seconds of consumption per round (3600 = hourly meter)."),
    time_mode: str = typer.Option("wall", help="Uplink timestamps: wall (now) or sim (simulated time, a backfill "
                                  "ending now)."),
    fcnt_start: int = typer.Option(0, help="First frame counter of every meter."),
    initial_register: int = typer.Option(-1, help="Start every register at this many litres (-1 = random); "
                                         "put it near the rollover to test wrapping."),
    rollover: int = typer.Option(100_000_000, help="Register modulus in litres (an 8-digit litre register)."),
    battery_decay: float = typer.Option(0.01, help="Battery percent lost per simulated day."),
    leak: list[int] = typer.Option([], help="Meter index with a leak (continuous flow, also at night); repeatable."),
    leak_lph: float = typer.Option(25.0, help="Leak flow in litres/hour."),
    burst: list[int] = typer.Option([], help="Meter index with a burst (1500 L/h, burst flag); repeatable."),
    backflow: list[int] = typer.Option([], help="Meter index running backwards (backflow flag); repeatable."),
    backflow_lph: float = typer.Option(40.0, help="Backflow in litres/hour."),
    tamper: list[int] = typer.Option([], help="Meter index reporting tampering; repeatable."),
    stuck: list[int] = typer.Option([], help="Meter index whose register is stuck; repeatable."),
    duplicates: float = typer.Option(0.0, help="Probability an uplink is delivered twice."),
    out_of_order: float = typer.Option(0.0, help="Probability an uplink arrives after the next one."),
    late: float = typer.Option(0.0, help="Probability an uplink is held back and sent at the end (late backlog)."),
    garbage: float = typer.Option(0.0, help="Probability a garbage payload is sent beside an uplink."),
    summary_file: str = typer.Option("", help="Also write the JSON summary to this file."),
    quiet: bool = typer.Option(False, help="No progress lines on stderr."),
) -> None:
    """Publish LoRaWAN water-meter uplinks as ChirpStack v4 or The Things Stack v3 would (QoS 1).

    Progress goes to stderr; a JSON summary (uplinks published, per-meter last totalizer and
    first/last frame counter) goes to stdout at the end.
    """
    from firmware_sim.lorawan import LorawanOptions, run_lorawan

    try:
        base = Behaviour(battery_decay_pct_per_day=battery_decay, rollover_l=rollover)
        opts = LorawanOptions(
            broker=broker, format=format, meters=meters, interval=interval, count=count or None, seed=seed,
            application_id=application_id, tenant_id=tenant_id, zone=zone, codec=codec, sim_step=sim_step,
            time_mode=time_mode, first_index=first_index, fcnt_start=fcnt_start,
            initial_register_l=None if initial_register < 0 else initial_register,
            behaviour=base,
            overrides=_overrides(base, leak, leak_lph, burst, backflow, backflow_lph, tamper, stuck),
            faults=FaultPlan(duplicate=duplicates, out_of_order=out_of_order, late=late, garbage=garbage),
            quiet=quiet,
        )
        opts.validate()
        from firmware_sim.ids import meter_serial

        meter_serial(zone, first_index + meters - 1)
        summary = run_lorawan(opts)
    except (ValueError, ConnectionError, TimeoutError) as e:
        raise _fail(str(e)) from None
    _emit(summary, summary_file)


def _parse_dt(s: str) -> datetime | None:
    return datetime.fromisoformat(s) if s else None
