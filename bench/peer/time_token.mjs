// Times llama.cpp's single-token decode through node-llama-cpp (its prebuilt CPU binaries):
// one sequence, a 1-token prompt (BOS), then greedy tokens one at a time.
//
//   node bench/peer/time_token.mjs --model M.gguf [--tokens 16] [--warmup 2] [--threads 2]
//
// Node resolves an ES module's packages from the module's own folder up (NODE_PATH does not
// apply), so bench/peer-llama.sh copies this file beside node-llama-cpp's node_modules and runs
// it there. The last line is machine-readable:
//   llama ms=<median> max_ms=<x> tokens=<n> threads=<t> variant=<ggml CPU variant> load_s=<s>
// `variant` is the libggml-cpu-<variant>.so that ggml's loader kept mapped: it scores every
// variant the package ships against this CPU and keeps the best.
import {readFileSync} from "node:fs";
import {performance} from "node:perf_hooks";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

function parseArgs(argv) {
    const o = {model: "", tokens: 16, warmup: 2, threads: 2};
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, "");
        if (!(key in o) || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
        o[key] = key === "model" ? argv[i + 1] : Number(argv[i + 1]);
    }
    if (!o.model || !(o.tokens > 0) || !(o.warmup >= 0) || !(o.threads > 0))
        throw new Error("usage: time_token.mjs --model M.gguf [--tokens N] [--warmup N] [--threads T]");
    return o;
}

function cpuVariant() {
    const m = readFileSync("/proc/self/maps", "utf8").match(/libggml-cpu-([A-Za-z0-9_]+)\.so/);
    return m ? m[1] : "unknown";
}

function median(v) {
    const s = [...v].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)];
}

// Milliseconds of each generated token after the prompt's. Each interval between two yields is
// one decode of the previous token plus greedy sampling; the first is the prompt's, not counted.
async function timeTokens(sequence, bos, count) {
    const ms = [];
    let last = performance.now();
    for await (const _ of sequence.evaluate([bos], {temperature: 0, yieldEogToken: true})) {
        const now = performance.now();
        ms.push(now - last);
        last = now;
        if (ms.length > count) break;
    }
    return ms.slice(1);
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    const llama = await getLlama({gpu: false, build: "never", skipDownload: true,
                                  maxThreads: o.threads, logLevel: LlamaLogLevel.error});
    const t0 = performance.now();
    const model = await llama.loadModel({modelPath: o.model, gpuLayers: 0});
    const context = await model.createContext({
        contextSize: Math.max(64, 2 * (o.tokens + o.warmup + 2)), sequences: 1,
        threads: {ideal: o.threads, min: o.threads}});
    const loadS = (performance.now() - t0) / 1000;
    const ms = (await timeTokens(context.getSequence(), model.tokens.bos, o.warmup + o.tokens))
        .slice(o.warmup);
    console.log(`llama ms=${median(ms).toFixed(1)} max_ms=${Math.max(...ms).toFixed(1)} ` +
                `tokens=${ms.length} threads=${context.currentThreads} variant=${cpuVariant()} ` +
                `load_s=${loadS.toFixed(1)}`);
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((e) => {
    console.error(`time_token: ${e.message}`);
    process.exit(1);
});
