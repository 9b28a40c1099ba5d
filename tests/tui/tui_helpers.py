"""Helpers shared by the reader app tests (imported by name: tests/tui is on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.store import EdgeStore
from tui.repository import Enrolment, Repository
from tui.sample import MUNICIPALITY, ZONE, load_sample

SITE = "0190a000-0000-7000-8000-0000000000aa"


def make_handheld(path: Path, *, cloud_url: str = "http://127.0.0.1:9", gateway_url: str = "",
                  token: str = "test-token", site_id: str = SITE, **sample: object) -> None:
    store = EdgeStore.open(path, site_id=site_id)
    load_sample(store, **sample)
    repo = Repository(store)
    repo.save_enrolment(Enrolment(site_id=site_id, token=token, role="handheld", municipality=MUNICIPALITY,
                                  zone=ZONE, cloud_url=cloud_url, gateway_url=gateway_url, reader_id="L-001"))
    store.close()



def readings(path: Path) -> list[dict[str, Any]]:
    store = EdgeStore.open(path, site_id=SITE)
    try:
        return store.rows("readings")
    finally:
        store.close()
