"""Package discovery: `firmware-sim/` is imported as `firmware_sim` (DESIGN.md section 2)."""

from setuptools import find_packages, setup

TOP = ["aquacis", "sync", "edge", "gateway", "cloud", "tui"]
packages = [p for p in find_packages(".") if p.split(".")[0] in TOP]
packages += ["firmware_sim"] + [f"firmware_sim.{p}" for p in find_packages("firmware-sim")]

setup(packages=packages, package_dir={"firmware_sim": "firmware-sim"})
