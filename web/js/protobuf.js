// Reads protobuf bytes through the schema the gateway describes at GET /schema, for the one
// place the page receives bytes: the status details of a Connect error ({type, value} with
// the message in base64). The result is proto3 JSON with proto field names, 64-bit integers
// as strings and enums as names, as the gateway writes messages elsewhere.

/** Nesting deeper than this is refused (schemas can be recursive; bytes can lie). */
const MAX_DEPTH = 32;

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** Kinds that may arrive packed (several values in one length-delimited field). */
const PACKABLE = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'bool', 'enum', 'fixed32', 'sfixed32', 'float', 'fixed64', 'sfixed64', 'double']);

/** Bytes as base64, the way proto3 JSON writes `bytes`. */
export function toBase64(bytes) {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

/** base64 (standard or URL-safe, padded or not) as bytes; throws on anything else. */
export function fromBase64(text) {
  const standard = String(text).replace(/-/g, '+').replace(/_/g, '/');
  const padded = standard + '='.repeat((4 - (standard.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done() {
    return this.pos >= this.bytes.length;
  }

  varint() {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.done) throw new Error('the bytes end inside a varint');
      const byte = this.bytes[this.pos++];
      result |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return BigInt.asUintN(64, result);
    }
    throw new Error('a varint longer than 10 bytes');
  }

  take(length) {
    if (this.pos + length > this.bytes.length) throw new Error('a field runs past the end of the bytes');
    const out = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }
}

/** One scalar of `kind` read from `reader` as its wire type gives it. */
function readScalar(kind, reader, schema, typeName) {
  const fixed = (length) => {
    const bytes = reader.take(length);
    return new DataView(bytes.buffer, bytes.byteOffset, length);
  };
  switch (kind) {
    case 'int32': return Number(BigInt.asIntN(32, reader.varint()));
    case 'uint32': return Number(BigInt.asUintN(32, reader.varint()));
    case 'int64': return BigInt.asIntN(64, reader.varint()).toString();
    case 'uint64': return reader.varint().toString();
    case 'sint32':
    case 'sint64': {
      const raw = reader.varint();
      const value = (raw >> 1n) ^ -(raw & 1n);
      return kind === 'sint32' ? Number(value) : value.toString();
    }
    case 'bool': return reader.varint() !== 0n;
    case 'enum': {
      const number = Number(BigInt.asIntN(32, reader.varint()));
      return schema.enums?.[typeName]?.values?.find((v) => v.number === number)?.name ?? number;
    }
    case 'fixed32': return fixed(4).getUint32(0, true);
    case 'sfixed32': return fixed(4).getInt32(0, true);
    case 'float': return fixed(4).getFloat32(0, true);
    case 'fixed64': return fixed(8).getBigUint64(0, true).toString();
    case 'sfixed64': return fixed(8).getBigInt64(0, true).toString();
    case 'double': return fixed(8).getFloat64(0, true);
    default: throw new Error(`unsupported field kind ${kind}`);
  }
}

/** Skips a field of an unknown number. */
function skip(reader, wire) {
  if (wire === VARINT) reader.varint();
  else if (wire === FIXED64) reader.take(8);
  else if (wire === LENGTH_DELIMITED) reader.take(Number(reader.varint()));
  else if (wire === FIXED32) reader.take(4);
  else throw new Error(`wire type ${wire} is not one proto3 uses`);
}

/** The value of one occurrence of a (non-map) field, or several for a packed one. */
function readValues(schema, kind, typeName, wire, reader, depth) {
  if (kind === 'message') return [decodeMessage(schema, typeName, reader.take(Number(reader.varint())), depth + 1)];
  if (kind === 'string') return [new TextDecoder().decode(reader.take(Number(reader.varint())))];
  if (kind === 'bytes') return [toBase64(reader.take(Number(reader.varint())))];
  if (wire === LENGTH_DELIMITED && PACKABLE.has(kind)) {
    const packed = new Reader(reader.take(Number(reader.varint())));
    const values = [];
    while (!packed.done) values.push(readScalar(kind, packed, schema, typeName));
    return values;
  }
  return [readScalar(kind, reader, schema, typeName)];
}

/**
 * Decodes `bytes` as the message `typeName` of `schema` (the /schema document); throws an
 * Error when the type is unknown or the bytes do not read as it. Unknown fields are skipped.
 */
export function decodeMessage(schema, typeName, bytes, depth = 0) {
  const message = schema?.messages?.[typeName];
  if (!message) throw new Error(`the schema has no message ${typeName}`);
  if (depth > MAX_DEPTH) throw new Error(`messages nested deeper than ${MAX_DEPTH}`);
  const fields = new Map((message.fields || []).map((field) => [field.number, field]));
  const reader = new Reader(bytes);
  const out = {};
  while (!reader.done) {
    const key = reader.varint();
    const number = Number(key >> 3n);
    const wire = Number(key & 7n);
    const field = fields.get(number);
    if (!field) {
      skip(reader, wire);
      continue;
    }
    if (field.kind === 'map') {
      const map = field.map || {};
      const entry = new Reader(reader.take(Number(reader.varint())));
      let mapKey = '';
      let value;
      while (!entry.done) {
        const entryKey = entry.varint();
        const entryWire = Number(entryKey & 7n);
        const entryNumber = Number(entryKey >> 3n);
        if (entryNumber === 1) [mapKey] = readValues(schema, map.key_kind, undefined, entryWire, entry, depth);
        else if (entryNumber === 2) [value] = readValues(schema, map.value_kind, map.value_type_name, entryWire, entry, depth);
        else skip(entry, entryWire);
      }
      out[field.name] ||= {};
      out[field.name][String(mapKey)] = value;
      continue;
    }
    const values = readValues(schema, field.kind, field.type_name, wire, reader, depth);
    if (field.repeated) (out[field.name] ||= []).push(...values);
    else out[field.name] = values[values.length - 1];
  }
  return out;
}
