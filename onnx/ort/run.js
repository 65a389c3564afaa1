// Runs an ONNX model in onnxruntime-node for package ort (github.com/qatgo/qatgo/onnx/ort).
// Usage: node run.js REQUEST.json
// The request names the model, the input (raw little-endian file, element type, dims), the output
// file, the thread count and, for timing, the number of timed runs after one warm-up.
// It prints one JSON line: {"dims": [...], "type": "...", "usPerRun": x}.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

const arrays = { float32: Float32Array, int8: Int8Array, uint8: Uint8Array, int32: Int32Array };

async function main() {
  const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const opt = {
    intraOpNumThreads: req.threads || 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  if (req.optimized) opt.optimizedModelFilePath = req.optimized;
  const session = await ort.InferenceSession.create(req.model, opt);
  const buf = fs.readFileSync(req.input);
  const A = arrays[req.type];
  if (!A) throw new Error('unknown input type ' + req.type);
  const data = new A(buf.buffer, buf.byteOffset, buf.byteLength / A.BYTES_PER_ELEMENT);
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor(req.type, data, req.dims);
  let out = await session.run(feeds);
  let us = 0;
  if (req.runs > 0) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < req.runs; i++) out = await session.run(feeds);
    us = Number(process.hrtime.bigint() - t0) / 1e3 / req.runs;
  }
  const y = out[session.outputNames[0]];
  fs.writeFileSync(req.output, Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
  process.stdout.write(JSON.stringify({ dims: y.dims, type: y.type, usPerRun: us }) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
