'use strict';
// Runs one ONNX model in ONNX Runtime for Node.js (onnxruntime-node) for `graft check`.
//
//   node ort-node-runner.js ORT_MODULE_DIR EXCHANGE_DIR
//
// EXCHANGE_DIR/request.json:
//   {"model": PATH, "threads": N, "warmup": N, "runs": N,
//    "inputs": [{"name": S, "type": "float32"|"int64"|"int32", "dims": [..], "file": "in0.bin"}],
//    "adapters": [PATH, ..]}                                  (optional: ORT .onnx_adapter files)
// Each input file holds the tensor's elements, raw little-endian, row-major.
// Writes EXCHANGE_DIR/response.json:
//   {"runtime": "onnxruntime-node X.Y.Z", "latenciesMs": [..],
//    "outputs": [{"name", "type", "dims", "file"}]}        (output files as the inputs)
// With adapters, one session serves them all, one after the other, and the response holds
//   {"runtime": .., "adapters": [{"latenciesMs": [..], "outputs": [..]}, ..]}  (in request order)
// or, when the model does not load or run, {"stage": "load"|"run", "error": MESSAGE} and exit 3.
//
// Adapters: onnxruntime-node (1.30.0) has no LoRA adapter API (ORT's C API has
// OrtLoraAdapter / RunOptions.AddActiveLoraAdapter, but the Node binding exposes neither). What
// that API does at Run is append every parameter of the active adapter to the feeds, by name
// (CheckAndAdjustInputSpansForLora, onnxruntime_c_api.cc). This script does the same: it reads
// the .onnx_adapter FlatBuffer (readAdapter below) and feeds its tensors as inputs.
const fs = require('fs');
const path = require('path');

const [moduleDir, dir] = process.argv.slice(2);
const ort = require(moduleDir);
const version = require(path.join(moduleDir, 'package.json')).version;
const request = JSON.parse(fs.readFileSync(path.join(dir, 'request.json'), 'utf8'));

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array,
  int64: BigInt64Array, int32: Int32Array, int16: Int16Array, int8: Int8Array,
  uint64: BigUint64Array, uint32: Uint32Array, uint16: Uint16Array, uint8: Uint8Array, bool: Uint8Array,
};
// ONNX TensorProto.DataType codes (the adapter schema's TensorDataType) to ORT-JS type names.
const ONNX_TYPES = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64',
};

function respond(obj, code) {
  fs.writeFileSync(path.join(dir, 'response.json'), JSON.stringify(obj));
  process.exit(code);
}

function fail(stage, message) {
  respond({ stage, error: message }, 3);
}

// A typed array over a copy of bytes (the copy makes the element alignment right).
function typed(type, bytes, what) {
  const Ctor = ARRAYS[type];
  if (!Ctor) fail('load', `${what} has type ${type}, which the runner does not read`);
  if (bytes.length % Ctor.BYTES_PER_ELEMENT !== 0) {
    fail('load', `${what} holds ${bytes.length} bytes, not a whole number of ${type} elements`);
  }
  const copy = new ArrayBuffer(bytes.length);
  new Uint8Array(copy).set(bytes);
  return new Ctor(copy);
}

function readInput(spec) {
  const buf = fs.readFileSync(path.join(dir, spec.file));
  return new ort.Tensor(spec.type, typed(spec.type, buf, `input '${spec.name}'`), spec.dims);
}

// ---- ORT's .onnx_adapter (onnxruntime/lora/adapter_format/adapter_schema.fbs) ----------------
//   table Parameter { name:string; dims:[int64]; data_type:TensorDataType; raw_data:[uint8]; }
//   table Adapter   { format_version:int; adapter_version:int; model_version:int; parameters:[Parameter]; }
//   root_type Adapter; file_identifier "TORT";
// FlatBuffers, little-endian: the file starts with the root table's uoffset; a table starts with
// an soffset back to its vtable (table - soffset); the vtable holds uint16 sizes, then one uint16
// per field: the field's offset within the table, 0 when absent. Strings and vectors are reached
// by a uoffset relative to the field's own position and start with a uint32 length.
function readAdapter(file) {
  const b = fs.readFileSync(file);
  const what = `adapter ${file}`;
  if (b.length < 8 || b.toString('latin1', 4, 8) !== 'TORT') {
    fail('load', `${what} is not an ONNX Runtime adapter (no "TORT" file identifier at byte 4)`);
  }
  const u32 = (p) => {
    if (p < 0 || p + 4 > b.length) fail('load', `${what} is truncated (offset ${p})`);
    return b.readUInt32LE(p);
  };
  const field = (table, slot) => {
    const vtable = table - b.readInt32LE(table);
    const vsize = b.readUInt16LE(vtable);
    const at = 4 + 2 * slot;
    const off = at < vsize ? b.readUInt16LE(vtable + at) : 0;
    return off === 0 ? -1 : table + off;
  };
  const deref = (p) => p + u32(p);
  const root = u32(0);
  const fv = field(root, 0);
  const formatVersion = fv < 0 ? 0 : b.readInt32LE(fv);
  if (formatVersion !== 1) fail('load', `${what} has format version ${formatVersion}; ONNX Runtime reads version 1`);
  const pv = field(root, 3);
  if (pv < 0) fail('load', `${what} has no parameters`);
  const vec = deref(pv);
  const n = u32(vec);
  const params = [];
  for (let i = 0; i < n; i++) {
    const elem = vec + 4 + 4 * i;
    const t = deref(elem);
    const nameAt = field(t, 0);
    const dimsAt = field(t, 1);
    const typeAt = field(t, 2);
    const rawAt = field(t, 3);
    if (nameAt < 0 || dimsAt < 0 || rawAt < 0) fail('load', `${what}: parameter ${i} lacks its name, dims or data`);
    const s = deref(nameAt);
    const name = b.toString('utf8', s + 4, s + 4 + u32(s));
    const d = deref(dimsAt);
    const dims = [];
    for (let k = 0; k < u32(d); k++) dims.push(Number(b.readBigInt64LE(d + 4 + 8 * k)));
    const code = typeAt < 0 ? 0 : b.readInt32LE(typeAt);
    const type = ONNX_TYPES[code];
    if (!type) fail('load', `${what}: parameter '${name}' has ONNX element type ${code}, which the runner does not read`);
    const r = deref(rawAt);
    const len = u32(r);
    const data = typed(type, b.subarray(r + 4, r + 4 + len), `${what}: parameter '${name}'`);
    const count = dims.reduce((x, y) => x * y, 1);
    if (data.length !== count) {
      fail('load', `${what}: parameter '${name}' holds ${data.length} elements but its dims ${JSON.stringify(dims)} need ${count}`);
    }
    params.push({ name, tensor: new ort.Tensor(type, data, dims) });
  }
  return params;
}

// The feeds with the adapter active, as ORT's adapter API makes them: every parameter is fed to
// the graph input of its name; one the caller also feeds, or that names no input, is an error.
function withAdapter(session, feeds, params, file) {
  const out = Object.assign({}, feeds);
  for (const p of params) {
    if (!session.inputNames.includes(p.name)) {
      // An input with an initializer default is missing from inputNames, and the binding would
      // drop its feed without a word: the model must be in the feed form (FeedForm.java).
      fail('run', `adapter ${file}: parameter '${p.name}' is not among the session's inputNames (an input`
        + ' that has an initializer default is left out of them, and onnxruntime-node would drop its feed);'
        + ' run the feed form of base_with_lora_inputs.onnx (graft convert IN OUT --feed-form)');
    }
    if (p.name in feeds) fail('run', `adapter ${file}: parameter '${p.name}' is also fed by the caller`);
    out[p.name] = p.tensor;
  }
  return out;
}

async function timed(session, feeds) {
  let result;
  const latencies = [];
  try {
    for (let i = 0; i < request.warmup; i++) await session.run(feeds);
    for (let i = 0; i < Math.max(1, request.runs); i++) {
      const t0 = process.hrtime.bigint();
      result = await session.run(feeds);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } catch (e) {
    fail('run', String(e && e.message ? e.message : e));
  }
  return { result, latencies };
}

function writeOutputs(session, result, prefix) {
  const outputs = [];
  session.outputNames.forEach((name, i) => {
    const t = result[name];
    const file = `${prefix}out${i}.bin`;
    const data = t.data;
    fs.writeFileSync(path.join(dir, file), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    outputs.push({ name, type: t.type, dims: t.dims, file });
  });
  return outputs;
}

async function main() {
  let session;
  try {
    session = await ort.InferenceSession.create(request.model, {
      intraOpNumThreads: request.threads,
      interOpNumThreads: 1,
      executionProviders: ['cpu'],
    });
  } catch (e) {
    fail('load', String(e && e.message ? e.message : e));
  }
  const feeds = {};
  for (const spec of request.inputs) feeds[spec.name] = readInput(spec);
  const runtime = `onnxruntime-node ${version}`;
  if (!request.adapters || request.adapters.length === 0) {
    const { result, latencies } = await timed(session, feeds);
    respond({ runtime, latenciesMs: latencies, outputs: writeOutputs(session, result, '') }, 0);
  }
  const adapters = [];
  for (let k = 0; k < request.adapters.length; k++) {
    const file = request.adapters[k];
    const { result, latencies } = await timed(session, withAdapter(session, feeds, readAdapter(file), file));
    adapters.push({ latenciesMs: latencies, outputs: writeOutputs(session, result, `a${k}-`) });
  }
  respond({ runtime, adapters }, 0);
}

main().catch((e) => respond({ stage: 'run', error: String(e && e.stack ? e.stack : e) }, 3));
