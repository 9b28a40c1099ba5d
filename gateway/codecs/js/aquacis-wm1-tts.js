// AquaCIS WM1 simulator water meter, The Things Stack style (global decodeUplink).
// Payload format: docs/codecs.md ("aquacis-wm1").
function u32le(b, i) {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) + b[i + 3] * 16777216;
}

function battery(raw, out, warnings) {
  if (raw === 0xff) {
    warnings.push("battery unknown");
  } else if (raw > 100) {
    warnings.push("battery " + raw + "% out of range, clamped to 100");
    out.battery = 100;
  } else {
    out.battery = raw;
  }
}

function decodeUplink(input) {
  var b = input.bytes;
  var warnings = [];
  var data = {};
  if (input.fPort === 1) {
    if (b.length !== 7 && b.length !== 9) {
      return { errors: ["bad length " + b.length + ", expected 7 or 9"] };
    }
    if (b[0] !== 1) return { errors: ["unsupported payload version " + b[0]] };
    var flags = b[5];
    data.volume_l = u32le(b, 1);
    data.leak = (flags & 0x01) !== 0;
    data.burst = (flags & 0x02) !== 0;
    data.backflow = (flags & 0x04) !== 0;
    data.tamper = (flags & 0x08) !== 0;
    if (flags & 0xf0) {
      warnings.push("reserved flag bits set: 0x" + ("0" + (flags & 0xf0).toString(16)).slice(-2));
    }
    battery(b[6], data, warnings);
    if (b.length === 9) {
      var f = b[7] | (b[8] << 8);
      data.flow_lph = f > 0x7fff ? f - 0x10000 : f;
    }
    return { data: data, warnings: warnings };
  }
  if (input.fPort === 2) {
    if (b.length !== 3) return { errors: ["bad length " + b.length + ", expected 3"] };
    if (b[0] !== 1) return { errors: ["unsupported payload version " + b[0]] };
    data.firmware = b[1];
    battery(b[2], data, warnings);
    return { data: data, warnings: warnings };
  }
  return { errors: ["unknown fPort " + input.fPort] };
}
