// AquaCIS WM1 simulator water meter, ChirpStack v4 style (ES module, Buffer global).
// Payload format: docs/codecs.md ("aquacis-wm1").
const FLAGS = { leak: 0x01, burst: 0x02, backflow: 0x04, tamper: 0x08 };

function battery(raw, out, warnings) {
  if (raw === 0xff) {
    warnings.push("battery unknown");
  } else if (raw > 100) {
    warnings.push(`battery ${raw}% out of range, clamped to 100`);
    out.battery = 100;
  } else {
    out.battery = raw;
  }
}

export function decodeUplink(input) {
  const buf = Buffer.from(input.bytes);
  const warnings = [];
  const data = {};
  if (input.fPort === 1) {
    if (buf.length !== 7 && buf.length !== 9) {
      return { errors: [`bad length ${buf.length}, expected 7 or 9`] };
    }
    if (buf.readUInt8(0) !== 1) return { errors: [`unsupported payload version ${buf[0]}`] };
    const flags = buf.readUInt8(5);
    data.volume_l = buf.readUInt32LE(1);
    for (const [name, bit] of Object.entries(FLAGS)) data[name] = (flags & bit) !== 0;
    if (flags & 0xf0) {
      warnings.push("reserved flag bits set: 0x" + Buffer.from([flags & 0xf0]).toString("hex"));
    }
    battery(buf.readUInt8(6), data, warnings);
    if (buf.length === 9) data.flow_lph = buf.readInt16LE(7);
    return { data, warnings };
  }
  if (input.fPort === 2) {
    if (buf.length !== 3) return { errors: [`bad length ${buf.length}, expected 3`] };
    if (buf[0] !== 1) return { errors: [`unsupported payload version ${buf[0]}`] };
    data.firmware = buf[1];
    battery(buf[2], data, warnings);
    return { data, warnings };
  }
  return { errors: [`unknown fPort ${input.fPort}`] };
}
