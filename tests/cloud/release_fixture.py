"""A past release's database as a stored fixture, for clones without its git history.

`tests/fixtures/release-<commit>.json.gz` holds every row of a database that release's own code
built (its CLI migrated and seeded; `release_<commit>_writes.py` wrote through its API), dumped
table by table with typed values. `load` puts those rows into a database brought to the
release's head revision (its schema) so the upgrade tests can migrate it to today's head when
`git archive <commit>` is impossible (a shallow clone).

Remake one (needs the history): `.venv/bin/python tests/cloud/release_fixture.py <commit>`.
"""

from __future__ import annotations

import base64
import gzip
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_path(release: str) -> Path:
    return FIXTURES / f"release-{release}.json.gz"


def _enc(v: Any) -> Any:
    if isinstance(v, datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, date):
        return {"$date": v.isoformat()}
    if isinstance(v, Decimal):
        return {"$dec": str(v)}
    if isinstance(v, (bytes, memoryview)):
        return {"$b64": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, dict) and len(v) == 1 and next(iter(v)).startswith("$"):
        return {"$json": v}  # a JSON document that looks like a tag
    return v


def _dec(v: Any) -> Any:
    if isinstance(v, dict) and len(v) == 1:
        (tag, x), = v.items()
        if tag == "$dt":
            return datetime.fromisoformat(x)
        if tag == "$date":
            return date.fromisoformat(x)
        if tag == "$dec":
            return Decimal(x)
        if tag == "$b64":
            return base64.b64decode(x)
        if tag == "$json":
            return x
    return v


def dump(engine: sa.Engine) -> dict[str, Any]:
    """Every row of every table (alembic_version aside), typed through the reflected schema."""
    meta = sa.MetaData()
    meta.reflect(engine)
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            cols = [c.name for c in table.columns]
            rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns or table.columns)).all()
            out[table.name] = {"columns": cols, "rows": [[_enc(v) for v in row] for row in rows]}
    return out


def load(engine: sa.Engine, tables: dict[str, Any], revision: str) -> None:
    """Bring an empty database to the release's schema (its head `revision`) and insert the rows."""
    from alembic import command

    from cloud import row_security
    from cloud.db import alembic_config, import_table_modules

    import_table_modules()
    cfg = alembic_config(engine)
    with row_security.system_scope("migrate"), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            data = tables.get(table.name)
            if not data or not data["rows"]:
                continue
            rows = [dict(zip(data["columns"], map(_dec, row), strict=True)) for row in data["rows"]]
            conn.execute(table.insert(), rows)
        if conn.dialect.name == "postgresql":
            # ids were inserted as given: their sequences must start after them
            for table in meta.sorted_tables:
                for col in table.primary_key.columns:
                    seq = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                       {"t": table.name, "c": col.name}).scalar()
                    if seq:
                        conn.execute(sa.text(f'SELECT setval(:s, (SELECT coalesce(max("{col.name}"), 0) + 1 '
                                             f'FROM "{table.name}"), false)'), {"s": seq})


def save(release: str, tables: dict[str, Any], info: dict[str, Any]) -> None:
    doc = {"release": release, "info": info, "tables": tables}
    FIXTURES.mkdir(parents=True, exist_ok=True)
    fixture_path(release).write_bytes(
        gzip.compress(json.dumps(doc, ensure_ascii=False, sort_keys=True).encode(), mtime=0))


def read(release: str) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = json.loads(gzip.decompress(fixture_path(release).read_bytes()))
    return doc["tables"], doc["info"]


if __name__ == "__main__":
    # Build with the release's own code into a SQLite file, then store it.
    import importlib
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from release_support import extract_release

    from cloud.db import make_engine

    builders = {"962a8d7": "test_release_upgrade", "7905ae7": "test_release_upgrade_020"}
    release = sys.argv[1]
    build_with_release = importlib.import_module(builders[release]).build_with_release
    with tempfile.TemporaryDirectory() as tmp:
        tree = extract_release(release, Path(tmp) / "release")
        url = f"sqlite:///{Path(tmp) / 'release.db'}"
        info = build_with_release(tree, url)
        engine = make_engine(url)
        save(release, dump(engine), info)
        engine.dispose()
    print(f"wrote {fixture_path(release)} ({fixture_path(release).stat().st_size} bytes)")
