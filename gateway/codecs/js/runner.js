// AquaCIS codec runner: one call per uplink, JSON string in, JSON string out, so crossing the
// Python/JS boundary costs one string each way. `__aquacis_entry` is set after the codec loads.
globalThis.__aquacis_run = function (json) {
  var req = JSON.parse(json);
  var bytes = req.bytes;
  var out;
  if (req.style === "legacy-ttn") {
    out = { data: __aquacis_entry(bytes, req.fPort) };
  } else if (req.style === "legacy-chirpstack") {
    out = { data: __aquacis_entry(req.fPort, bytes, req.variables || {}) };
  } else {
    var input = { bytes: bytes, fPort: req.fPort, variables: req.variables || {} };
    if (req.recvTime) input.recvTime = new Date(req.recvTime);
    out = __aquacis_entry(input);
  }
  if (out === null || typeof out !== "object") return JSON.stringify({ __bad: typeof out });
  return JSON.stringify(out);
};
