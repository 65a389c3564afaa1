#!/usr/bin/env node
// compare.js: qatgo's integer runtime beside onnxruntime on the same CNN, in one run.
//
//   cd bench/onnxruntime
//   npm install --ignore-scripts onnxruntime-node@1.30.0
//   node compare.js [MODEL.qm] [-model ggml|bn|dsnet] [-time SECONDS] [-repeat N]
//
// Without MODEL.qm it uses ggml's MNIST CNN with random weights calibrated on MNIST (with -model bn
// the default example's BN CNN, BatchNorm folded; with -model dsnet the depthwise-separable
// residual CNN imported from ONNX, onnx/testnets.DSNet); pass an exported model (go run
// ./examples/mnist -model ggml, or the default bn model) to compare a trained network.
// onnxruntime runs the library's onnx.FloatFromQModel of the .qm (float32, weights dequantized,
// NCHW) and, for a .qm with a float input, also the same integer model as QDQ ONNX
// (onnx.FromQModel, which onnxruntime runs with its int8 kernels: QLinearConv, QGemm,
// QLinearAdd). Both are written by TestWriteBenchFiles in package onnx and checked against qatgo's
// outputs before timing. The temporary folder is removed on exit, on errors and on Ctrl-C.
// onnxruntime runs with graph optimization level "all", intra-op threads 1 and 2, sequential
// execution; qatgo runs `qatgo bench` with -threads 1 and 2. The 1- and 2-thread measurements
// alternate -repeat times (default 3), each figure the best of its repeats. Batch-1 latency is
// the median of single calls; onnxruntime-node's own per-call floor (an Identity model) is printed so that it
// can be subtracted. Figures depend on machine load: compare ratios from one run.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const ort = require('onnxruntime-node');

const args = process.argv.slice(2);
let qm = '';
let seconds = 1;
let arch = 'ggml';
let repeat = 3;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '-time') seconds = Number(args[++i]);
  else if (args[i] === '-repeat') repeat = Number(args[++i]);
  else if (args[i] === '-model') arch = args[++i];
  else qm = path.resolve(args[i]);
}
const root = path.resolve(__dirname, '..', '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qatgo-ort-'));
const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

function sh(cmd, argv, env) {
  return execFileSync(cmd, argv, { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8' });
}

async function main() {
  sh('go', ['test', '-count=1', '-run', '^TestWriteBenchFiles$', './onnx'], { QATGO_ONNX_DIR: dir, QATGO_ONNX_FROM: qm, QATGO_ONNX_MODEL: arch });
  const model = qm || path.join(dir, 'model.qm');
  sh('go', ['build', '-o', path.join(dir, 'qatgo'), './cmd/qatgo']);

  // Same network: onnxruntime on qatgo's reference inputs, against qatgo's outputs.
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8'));
  const [h, w, c] = ref.shape;
  const per = h * w * c;
  const n = ref.inputs.length / per;
  const outN = ref.outputs.length / n;
  const x = new Float32Array(n * per); // NCHW
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++)
        for (let ch = 0; ch < c; ch++)
          x[((b * c + ch) * h + y) * w + xx] = ref.inputs[((b * h + y) * w + xx) * c + ch];
  const opts = (t) => ({ graphOptimizationLevel: 'all', intraOpNumThreads: t, interOpNumThreads: 1, executionMode: 'sequential' });
  const s1 = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), opts(1));
  const feed = (sess, t) => ({ [sess.inputNames[0]]: t });
  const y = (await s1.run(feed(s1, new ort.Tensor('float32', x, [n, c, h, w]))))[s1.outputNames[0]].data;
  let agree = 0, maxDiff = 0;
  const argmax = (v, o) => { let k = 0; for (let j = 1; j < outN; j++) if (v[o + j] > v[o + k]) k = j; return k; };
  for (let b = 0; b < n; b++) {
    if (argmax(y, b * outN) === argmax(ref.outputs, b * outN)) agree++;
    for (let j = 0; j < outN; j++) maxDiff = Math.max(maxDiff, Math.abs(y[b * outN + j] - ref.outputs[b * outN + j]));
  }
  console.log(`model ${model}`);
  console.log(`check: onnxruntime f32 vs qatgo int8 on ${n} inputs: argmax agrees on ${agree}, max |diff| ${maxDiff.toFixed(3)}`);
  const qdqPath = path.join(dir, 'qdq.onnx');
  const hasQDQ = fs.existsSync(qdqPath);
  if (hasQDQ) {
    const sq = await ort.InferenceSession.create(qdqPath, opts(1));
    const yq = (await sq.run(feed(sq, new ort.Tensor('float32', x, [n, c, h, w]))))[sq.outputNames[0]].data;
    let qa = 0, qd = 0;
    for (let b = 0; b < n; b++) {
      if (argmax(yq, b * outN) === argmax(ref.outputs, b * outN)) qa++;
      for (let j = 0; j < outN; j++) qd = Math.max(qd, Math.abs(yq[b * outN + j] - ref.outputs[b * outN + j]));
    }
    console.log(`check: onnxruntime int8 (QDQ) vs qatgo int8 on ${n} inputs: argmax agrees on ${qa}, max |diff| ${qd.toFixed(3)}`);
  }

  const ms = seconds * 1000;
  async function latency(sess, feeds) {
    for (let i = 0; i < 50; i++) await sess.run(feeds);
    const lat = [];
    const end = Date.now() + ms;
    while (Date.now() < end || lat.length < 10) {
      const t0 = process.hrtime.bigint();
      await sess.run(feeds);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e3);
    }
    lat.sort((a, b) => a - b);
    return lat[Math.floor(lat.length / 2)];
  }
  // throughput returns wall-clock and process CPU time (user+system, all of onnxruntime's threads)
  // in us per image.
  async function throughput(sess, feeds, batch) {
    await sess.run(feeds);
    let runs = 0;
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const end = Date.now() + ms;
    while (Date.now() < end || runs < 3) { await sess.run(feeds); runs++; }
    const wall = Number(process.hrtime.bigint() - t0) / 1e3 / (runs * batch);
    const c = process.cpuUsage(c0);
    return [wall, (c.user + c.system) / (runs * batch)];
  }
  const rows = [];
  const idn = await ort.InferenceSession.create(path.join(dir, 'identity.onnx'), opts(1));
  const floor = await latency(idn, feed(idn, new ort.Tensor('float32', new Float32Array(1), [1, 1])));
  const big = new Float32Array(256 * per);
  for (let i = 0; i < big.length; i++) big[i] = x[i % x.length];
  const sessions = {};
  for (const t of [1, 2]) {
    const sess = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), opts(t));
    const one = feed(sess, new ort.Tensor('float32', x.subarray(0, per), [1, c, h, w]));
    const b256 = feed(sess, new ort.Tensor('float32', big, [256, c, h, w]));
    const sq = hasQDQ ? await ort.InferenceSession.create(qdqPath, opts(t)) : null;
    sessions[t] = { sess, one, b256, sq };
    rows.push({ t, ortLat: Infinity, ortTp: Infinity, ortCPU: Infinity, p50: Infinity, tp: Infinity, cpu: Infinity, qLat: NaN, qTp: NaN, qCPU: NaN });
  }
  // The 1- and 2-thread measurements alternate, -repeat times, and each figure is the best of its
  // repeats: a burst of other work on the machine then spoils one repeat, not the comparison.
  const best = (a, b) => (Number.isNaN(a) ? b : Math.min(a, b));
  for (let rep = 0; rep < repeat; rep++) {
    for (const r of rows) {
      const { sess, one, b256, sq } = sessions[r.t];
      r.ortLat = Math.min(r.ortLat, await latency(sess, one));
      const [ortTp, ortCPU] = await throughput(sess, b256, 256);
      r.ortTp = Math.min(r.ortTp, ortTp);
      r.ortCPU = Math.min(r.ortCPU, ortCPU);
      if (sq) {
        r.qLat = best(r.qLat, await latency(sq, feed(sq, one[sess.inputNames[0]])));
        const [qTp, qCPU] = await throughput(sq, feed(sq, b256[sess.inputNames[0]]), 256);
        r.qTp = best(r.qTp, qTp);
        r.qCPU = best(r.qCPU, qCPU);
      }
      const out = sh(path.join(dir, 'qatgo'), ['bench', '-batch', '256', '-time', `${seconds}s`, '-threads', String(r.t), model]);
      r.p50 = Math.min(r.p50, Number(/batch 1\s+p50 ([\d.]+) us/.exec(out)[1]));
      r.tp = Math.min(r.tp, Number(/batch 256\s+([\d.]+) us\/image/.exec(out)[1]));
      const cpuM = /process CPU time ([\d.]+) us\/image/.exec(out);
      r.cpu = cpuM ? Math.min(r.cpu, Number(cpuM[1])) : NaN;
    }
  }
  console.log(`onnxruntime-node per-call floor (Identity, batch 1): ${floor.toFixed(2)} us\n`);
  const table = (title, kind, tp, cpu, lat) => {
    console.log(title + '\n');
    console.log(`| threads | qatgo batch 256 us/image | ort ${kind} batch 256 us/image | ratio | qatgo CPU us/image | ort ${kind} CPU us/image | CPU ratio | qatgo batch-1 p50 us | ort ${kind} batch-1 p50 us (minus floor) | ratio (minus floor) |`);
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of rows)
      console.log(`| ${r.t} | ${r.tp.toFixed(2)} | ${r[tp].toFixed(2)} | ${(r.tp / r[tp]).toFixed(2)} | ${r.cpu.toFixed(2)} | ${r[cpu].toFixed(2)} | ${(r.cpu / r[cpu]).toFixed(2)} | ${r.p50.toFixed(2)} | ${r[lat].toFixed(2)} (${(r[lat] - floor).toFixed(2)}) | ${(r.p50 / (r[lat] - floor)).toFixed(2)} |`);
    console.log(`\n2 threads / 1 thread throughput at batch 256: qatgo ${(rows[0].tp / rows[1].tp).toFixed(2)}x, ort ${(rows[0][tp] / rows[1][tp]).toFixed(2)}x\n`);
  };
  table('onnxruntime float32 (FloatFromQModel):', 'f32', 'ortTp', 'ortCPU', 'ortLat');
  if (hasQDQ) table('The same integer model in onnxruntime\'s int8 kernels (QDQ, FromQModel):', 'int8', 'qTp', 'qCPU', 'qLat');
  console.log('Wall-clock figures include waiting for the CPU on a loaded machine; CPU figures are process CPU time (user+system) per image.');
}

main().catch((e) => { console.error(e); process.exit(1); });
