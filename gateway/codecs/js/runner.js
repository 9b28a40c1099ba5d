// AquaCIS codec runner: one call per uplink with plain strings/numbers in and a JSON string out,
// so crossing the Python/JS boundary stays cheap. `__aquacis_entry` / `__aquacis_style` are set
// after the codec loads.
globalThis.__aquacis_run = function (hex, fPort, varsJson, recvTime) {
  var n = hex.length >> 1, bytes = new Array(n);
  for (var i = 0; i < n; i++) bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
  var variables = varsJson ? JSON.parse(varsJson) : {};
  var out;
  if (__aquacis_style === "legacy-ttn") {
    out = { data: __aquacis_entry(bytes, fPort) };
  } else if (__aquacis_style === "legacy-chirpstack") {
    out = { data: __aquacis_entry(fPort, bytes, variables) };
  } else {
    var input = { bytes: bytes, fPort: fPort, variables: variables };
    if (recvTime) input.recvTime = new Date(recvTime);
    out = __aquacis_entry(input);
  }
  if (out === null || typeof out !== "object") return JSON.stringify({ __bad: typeof out });
  return JSON.stringify(out);
};
