// AquaCIS codec prelude: the globals LNS codecs expect, written for this project.
// `console` is a no-op (codecs log while debugging; the sandbox has no output).
// `Buffer` is the subset of Node's Buffer that ChirpStack v4 makes global for its codecs.
(function () {
  var noop = function () {};
  globalThis.console = { log: noop, info: noop, warn: noop, error: noop, debug: noop };

  function hexToBytes(s) {
    if (s.length % 2) s = s.slice(0, s.length - 1);
    var out = [];
    for (var i = 0; i < s.length; i += 2) {
      var b = parseInt(s.substr(i, 2), 16);
      if (isNaN(b)) break;
      out.push(b);
    }
    return out;
  }
  function b64ToBytes(s) {
    s = s.replace(/[^A-Za-z0-9+/_-]/g, "").replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function utf8ToBytes(s) {
    var bin = unescape(encodeURIComponent(s)), out = new Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function latin1(bytes) {
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return s;
  }

  class Buffer extends Uint8Array {
    static from(value, encoding, length) {
      if (typeof value === "string") {
        var enc = (encoding || "utf8").toLowerCase();
        if (enc === "hex") return new Buffer(hexToBytes(value));
        if (enc === "base64" || enc === "base64url") return new Buffer(b64ToBytes(value));
        if (enc === "latin1" || enc === "binary" || enc === "ascii") {
          var a = new Array(value.length);
          for (var i = 0; i < value.length; i++) a[i] = value.charCodeAt(i) & 0xff;
          return new Buffer(a);
        }
        return new Buffer(utf8ToBytes(value));
      }
      if (value instanceof ArrayBuffer) return new Buffer(value, encoding || 0, length);
      return new Buffer(Array.prototype.slice.call(value));
    }
    static alloc(size, fill) {
      var b = new Buffer(size);
      if (fill !== undefined) b.fill(fill);
      return b;
    }
    static allocUnsafe(size) { return new Buffer(size); }
    static isBuffer(o) { return o instanceof Buffer; }
    static byteLength(s, enc) { return Buffer.from(s, enc).length; }
    static concat(list, total) {
      if (total === undefined) total = list.reduce(function (n, b) { return n + b.length; }, 0);
      var out = new Buffer(total), pos = 0;
      for (var i = 0; i < list.length && pos < total; i++) {
        var part = list[i].subarray(0, total - pos);
        out.set(part, pos);
        pos += part.length;
      }
      return out;
    }
    _view() { return new DataView(this.buffer, this.byteOffset, this.byteLength); }
    toString(encoding, start, end) {
      var b = this.subarray(start || 0, end === undefined ? this.length : end);
      var enc = (encoding || "utf8").toLowerCase();
      if (enc === "hex") {
        var h = "";
        for (var i = 0; i < b.length; i++) h += (b[i] < 16 ? "0" : "") + b[i].toString(16);
        return h;
      }
      if (enc === "base64") return btoa(latin1(b));
      if (enc === "latin1" || enc === "binary" || enc === "ascii") return latin1(b);
      try { return decodeURIComponent(escape(latin1(b))); } catch (e) { return latin1(b); }
    }
    toJSON() { return { type: "Buffer", data: Array.prototype.slice.call(this) }; }
    equals(o) {
      if (o.length !== this.length) return false;
      for (var i = 0; i < this.length; i++) if (this[i] !== o[i]) return false;
      return true;
    }
    readUInt8(o) { return this._view().getUint8(o || 0); }
    readInt8(o) { return this._view().getInt8(o || 0); }
    readUInt16LE(o) { return this._view().getUint16(o || 0, true); }
    readUInt16BE(o) { return this._view().getUint16(o || 0, false); }
    readInt16LE(o) { return this._view().getInt16(o || 0, true); }
    readInt16BE(o) { return this._view().getInt16(o || 0, false); }
    readUInt32LE(o) { return this._view().getUint32(o || 0, true); }
    readUInt32BE(o) { return this._view().getUint32(o || 0, false); }
    readInt32LE(o) { return this._view().getInt32(o || 0, true); }
    readInt32BE(o) { return this._view().getInt32(o || 0, false); }
    readFloatLE(o) { return this._view().getFloat32(o || 0, true); }
    readFloatBE(o) { return this._view().getFloat32(o || 0, false); }
    readDoubleLE(o) { return this._view().getFloat64(o || 0, true); }
    readDoubleBE(o) { return this._view().getFloat64(o || 0, false); }
    readBigUInt64LE(o) { return this._view().getBigUint64(o || 0, true); }
    readBigUInt64BE(o) { return this._view().getBigUint64(o || 0, false); }
    readBigInt64LE(o) { return this._view().getBigInt64(o || 0, true); }
    readBigInt64BE(o) { return this._view().getBigInt64(o || 0, false); }
    readUIntLE(o, n) { var v = 0; for (var i = n - 1; i >= 0; i--) v = v * 256 + this._at(o + i); return v; }
    readUIntBE(o, n) { var v = 0; for (var i = 0; i < n; i++) v = v * 256 + this._at(o + i); return v; }
    readIntLE(o, n) { var v = this.readUIntLE(o, n); return v >= Math.pow(2, 8 * n - 1) ? v - Math.pow(2, 8 * n) : v; }
    readIntBE(o, n) { var v = this.readUIntBE(o, n); return v >= Math.pow(2, 8 * n - 1) ? v - Math.pow(2, 8 * n) : v; }
    _at(i) {
      if (i < 0 || i >= this.length) throw new RangeError("offset " + i + " is out of range");
      return this[i];
    }
    writeUInt8(v, o) { this._view().setUint8(o || 0, v); return (o || 0) + 1; }
    writeUInt16LE(v, o) { this._view().setUint16(o || 0, v, true); return (o || 0) + 2; }
    writeUInt16BE(v, o) { this._view().setUint16(o || 0, v, false); return (o || 0) + 2; }
    writeUInt32LE(v, o) { this._view().setUint32(o || 0, v, true); return (o || 0) + 4; }
    writeUInt32BE(v, o) { this._view().setUint32(o || 0, v, false); return (o || 0) + 4; }
  }
  // Node's lower-case aliases (readUint16LE, ...).
  Object.getOwnPropertyNames(Buffer.prototype).forEach(function (k) {
    if (/^(read|write)UInt/.test(k)) Buffer.prototype[k.replace("UInt", "Uint")] = Buffer.prototype[k];
  });
  globalThis.Buffer = Buffer;
})();
