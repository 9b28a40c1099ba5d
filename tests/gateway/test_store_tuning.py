"""Every gateway connection checkpoints the WAL rarely (see `gateway.store.open_edge`)."""

from __future__ import annotations

from gateway.store import WAL_AUTOCHECKPOINT_PAGES, GatewayStore, open_edge


def test_gateway_connections_checkpoint_every_64_mib_of_wal(tmp_path):
    db = tmp_path / "gw.db"
    gw = GatewayStore.open(db)
    side = open_edge(db)  # what the uplink, hub, rules and Modbus threads open
    try:
        for conn in (gw.conn, side.conn):
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_AUTOCHECKPOINT_PAGES
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert WAL_AUTOCHECKPOINT_PAGES * conn.execute("PRAGMA page_size").fetchone()[0] == 64 * 1024 * 1024
        assert side.site_id == gw.edge.site_id  # the same store, not a second one
    finally:
        side.close()
        gw.close()
