"""`python -m firmware_sim …` = `aquacis sim …` without loading the other components (quick start-up)."""

from firmware_sim.cli import app

app(prog_name="aquacis sim")
