"""The `aquacis` console script: assembles each component's own typer app.

No component imports another to be reachable from here; this module is the only place
that knows them all.
"""

import typer

from aquacis.config import app as config_app
from cloud.cli import app as cloud_app
from edge.cli import app as edge_app
from firmware_sim.cli import app as sim_app
from gateway.cli import app as gateway_app
from tui.cli import app as handheld_app

app = typer.Typer(
    help="AquaCIS Edge: offline-first field and metering suite for water utilities.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Help text is plain text: with Rich markup, `[cloud]`, `[default: …]` and `[[station]]`
    # would be read as markup and vanish. Every sub-app's commands inherit this mode.
    rich_markup_mode=None,
)
app.add_typer(cloud_app, name="cloud", help="Cloud core: API server, users, nodes, billing workers.")
app.add_typer(gateway_app, name="gateway", help="Zone gateway daemon and technician tools.")
app.add_typer(edge_app, name="edge", help="A field node's local store: status, refusals, sync (technicians).")
app.add_typer(sim_app, name="sim", help="Device simulators and fault injection (firmware-sim).")
app.add_typer(config_app, name="config", help="Effective settings and where each comes from (flag, env, toml, default).")
app.add_typer(handheld_app, name="handheld", help="Reader app without a terminal: enrol, sync, status, read (scripts).")


@app.command()
def tui(
    db: str = typer.Option("", help="Path of the handheld's local SQLite store (default: per-user data dir)."),
) -> None:
    """Start the meter reader / technician app (Textual)."""
    from tui.main import run

    run(db or None)


@app.command()
def demo(
    meters: int = typer.Option(300, help="Number of simulated LoRaWAN water meters."),
    duration: float = typer.Option(40.0, help="Seconds the simulated fleet publishes."),
    outage: float = typer.Option(10.0, help="Seconds the cloud is taken down midway."),
    workdir: str = typer.Option(".demo", help="Folder for the demo's databases and logs."),
    broker: str = typer.Option("auto", help="auto (Mosquitto when installed, else embedded), mosquitto or embedded."),
) -> None:
    """Run the whole path locally: simulator → broker → gateway → cloud → billing run."""
    from aquacis.demo import run_demo

    raise typer.Exit(run_demo(meters=meters, duration=duration, outage=outage, workdir=workdir, broker=broker))


def main() -> None:
    from sync.logs import configure_logging

    # Every command logs JSON lines on stderr (warnings and errors until a long-running command
    # sets its own --log-level): stdout stays the command's own output, e.g. its JSON answer.
    configure_logging("warning")
    app()


if __name__ == "__main__":
    main()
