// Evaluates token sequences with llama.cpp (node-llama-cpp's prebuilt CPU library) for qatgo's
// GGUF parity tests. Reads one JSON request on stdin:
//   {"model": PATH, "sequences": [[ids...]...], "greedy": [{"prompt": [ids...], "n": N}...],
//    "threads": 1, "kv": "F32" or "F16" (the KV cache type; F32 unless given)}
// and prints one JSON line: {"logprobs": [seq][pos][vocab] (log of llama.cpp's next-token
// probabilities after each position), "greedy": [[N ids]...], "tokenize": [...]}.
// KV cache F32 unless "kv" says otherwise, flash attention off, temperature 0 (greedy), one sequence per fresh context with
// room to spare (a full context makes node-llama-cpp shift it before the last token).
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: req.model});
const vocab = model.tokens.length ?? 256;

async function withContext(size, fn) {
    const ctx = await model.createContext({
        contextSize: size, batchSize: size, threads: req.threads ?? 1, flashAttention: false,
        experimentalKvCacheKeyType: req.kv ?? "F32", experimentalKvCacheValueType: req.kv ?? "F32",
    });
    try {
        return await fn(ctx.getSequence());
    } finally {
        await ctx.dispose();
    }
}

function logprobs(probs) {
    const row = new Array(req.vocab ?? 256).fill(-Infinity);
    for (const [t, p] of probs) row[t] = Math.log(p);
    return row;
}

const out = {logprobs: [], greedy: [], timings: {}};
const t0 = performance.now();
let evaluated = 0;
for (const seq of req.sequences ?? []) {
    const rows = await withContext(seq.length + 16, async s => {
        if (req.stepwise) {
            const rows = [];
            for (const t of seq) {
                const res = await s.controlledEvaluate([[t, {generateNext: {probabilities: true}}]]);
                rows.push(logprobs(res[0].next.probabilities));
            }
            return rows;
        }
        const res = await s.controlledEvaluate(seq.map(t => [t, {generateNext: {probabilities: true}}]));
        return res.map(r => logprobs(r.next.probabilities));
    });
    evaluated += seq.length;
    out.logprobs.push(rows);
}
out.timings.prompt_tokens = evaluated;
out.timings.prompt_ms = performance.now() - t0;
const t1 = performance.now();
let generated = 0;
for (const g of req.greedy ?? []) {
    const toks = await withContext(g.prompt.length + g.n + 16, async s => {
        const got = [];
        let res = await s.controlledEvaluate(g.prompt.map((t, i) => i === g.prompt.length - 1 ? [t, {generateNext: {token: true}}] : t));
        let next = res[res.length - 1].next.token;
        for (let i = 0; i < g.n; i++) {
            got.push(next);
            if (i + 1 === g.n) break;
            res = await s.controlledEvaluate([[next, {generateNext: {token: true}}]]);
            next = res[0].next.token;
        }
        return got;
    });
    generated += toks.length;
    out.greedy.push(toks);
}
out.timings.gen_tokens = generated;
out.timings.gen_ms = performance.now() - t1;
if (req.text !== undefined) out.tokenize = Array.from(model.tokenize(req.text));
console.log(JSON.stringify(out));
await model.dispose();
await llama.dispose();
