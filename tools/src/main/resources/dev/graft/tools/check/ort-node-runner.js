'use strict';
// Runs one ONNX model in ONNX Runtime for Node.js (onnxruntime-node) for `graft check`.
//
//   node ort-node-runner.js ORT_MODULE_DIR EXCHANGE_DIR
//
// EXCHANGE_DIR/request.json:
//   {"model": PATH, "threads": N, "warmup": N, "runs": N,
//    "inputs": [{"name": S, "type": "float32"|"int64"|"int32", "dims": [..], "file": "in0.bin"}]}
// Each input file holds the tensor's elements, raw little-endian, row-major.
// Writes EXCHANGE_DIR/response.json:
//   {"runtime": "onnxruntime-node X.Y.Z", "latenciesMs": [..],
//    "outputs": [{"name", "type", "dims", "file"}]}        (output files as the inputs)
// or, when the model does not load or run, {"stage": "load"|"run", "error": MESSAGE} and exit 3.
const fs = require('fs');
const path = require('path');

const [moduleDir, dir] = process.argv.slice(2);
const ort = require(moduleDir);
const version = require(path.join(moduleDir, 'package.json')).version;
const request = JSON.parse(fs.readFileSync(path.join(dir, 'request.json'), 'utf8'));

const ARRAYS = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array, float64: Float64Array };

function respond(obj, code) {
  fs.writeFileSync(path.join(dir, 'response.json'), JSON.stringify(obj));
  process.exit(code);
}

function readInput(spec) {
  const Ctor = ARRAYS[spec.type];
  if (!Ctor) respond({ stage: 'load', error: `input '${spec.name}' has type ${spec.type}, which the runner does not read` }, 3);
  const buf = fs.readFileSync(path.join(dir, spec.file));
  const copy = new ArrayBuffer(buf.length);
  new Uint8Array(copy).set(buf);
  return new ort.Tensor(spec.type, new Ctor(copy), spec.dims);
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
    respond({ stage: 'load', error: String(e && e.message ? e.message : e) }, 3);
  }
  const feeds = {};
  for (const spec of request.inputs) feeds[spec.name] = readInput(spec);
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
    respond({ stage: 'run', error: String(e && e.message ? e.message : e) }, 3);
  }
  const outputs = [];
  session.outputNames.forEach((name, i) => {
    const t = result[name];
    const file = `out${i}.bin`;
    const data = t.data;
    fs.writeFileSync(path.join(dir, file), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    outputs.push({ name, type: t.type, dims: t.dims, file });
  });
  respond({ runtime: `onnxruntime-node ${version}`, latenciesMs: latencies, outputs }, 0);
}

main().catch((e) => respond({ stage: 'run', error: String(e && e.stack ? e.stack : e) }, 3));
