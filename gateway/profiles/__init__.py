"""Device profiles: which codec a device type uses and how its decoded data becomes a reading.

Built-in profiles ship as TOML in `gateway/profiles/builtin/`; sites add their own TOML/JSON
files (format in docs/codecs.md). `to_reading(profile, uplink, result)` builds the row.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gateway.profiles.model import (
    ALARMS,
    UNIT_LITRES,
    DeviceProfile,
    ProfileError,
    load_profile,
    profile_from_dict,
)
from gateway.profiles.reading import ReadingError, field_at, register_litres, to_reading

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
DEFAULT_PROFILE_NAME = "aquacis-wm1"


@cache
def builtin_profiles() -> dict[str, DeviceProfile]:
    out: dict[str, DeviceProfile] = {}
    for path in sorted(BUILTIN_DIR.glob("*.toml")):
        p = load_profile(path)
        out[p.name] = p
    return out


def load_profiles(paths: list[str | Path] | None = None) -> dict[str, DeviceProfile]:
    """Built-in profiles plus those in the given files/folders (a site file overrides a
    built-in of the same name)."""
    out = dict(builtin_profiles())
    for entry in paths or []:
        path = Path(entry)
        files = sorted([*path.glob("*.toml"), *path.glob("*.json")]) if path.is_dir() else [path]
        for f in files:
            p = load_profile(f)
            out[p.name] = p
    return out


def get_profile(name: str, extra: dict[str, DeviceProfile] | None = None) -> DeviceProfile:
    profiles = {**builtin_profiles(), **(extra or {})}
    try:
        return profiles[name]
    except KeyError:
        raise ProfileError(f"unknown device profile {name!r}; known: {', '.join(sorted(profiles))}") from None


def default_profile() -> DeviceProfile:
    """The profile of a device registered without one: our simulator meter."""
    return builtin_profiles()[DEFAULT_PROFILE_NAME]


__all__ = [
    "ALARMS",
    "BUILTIN_DIR",
    "UNIT_LITRES",
    "DeviceProfile",
    "ProfileError",
    "ReadingError",
    "builtin_profiles",
    "default_profile",
    "field_at",
    "get_profile",
    "load_profile",
    "load_profiles",
    "profile_from_dict",
    "register_litres",
    "to_reading",
]
