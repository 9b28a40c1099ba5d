"""The vocabularies that cross components, defined once (DESIGN §5a; docs/contracts.md,
"Shared vocabulary"). Every producer and consumer imports its names from here:

- `sync.vocab.units`: register and flow units and their factors to litres / L/h;
- `sync.vocab.readings`: reading sources, device alarm flags (with vendors' names mapped to
  ours) and the reader's own flags on a reading;
- `sync.vocab.anomalies`: anomaly kinds and severities the edge rules raise;
- `sync.vocab.work_orders`: work-order types, the status lattice, priorities and the typed
  shape of a completion's `result` (the meter replacement among them).

Pure data and parsing, no I/O.
"""
