#!/usr/bin/env python3
"""Times llama.cpp's decode of a GGUF model through its C API (the libllama that node-llama-cpp
ships, through ctypes: no JavaScript per token), for qatgo's speed comparison. Usage:
    bench.py MODEL.gguf [N_DECODE=128] [THREADS=1] [PROMPT=16]
It evaluates a prompt of PROMPT token ids, then decodes N_DECODE single tokens (teacher-forced ids
i % 256, no sampling), one llama_decode call per token, and prints one JSON line with the decode
tokens/s (wall clock and this process's CPU time) and the prompt time. Context defaults of
llama.cpp (F16 KV cache, flash attention auto) except n_ctx = PROMPT + N_DECODE rounded up, and
the thread count."""
import ctypes, glob, json, os, sys, time

class ModelParams(ctypes.Structure):
    # llama_model_params of llama.h (node-llama-cpp 3.21.1): only passed back as returned
    _fields_ = [("devices", ctypes.c_void_p), ("tensor_buft_overrides", ctypes.c_void_p),
                ("n_gpu_layers", ctypes.c_int32), ("split_mode", ctypes.c_int), ("load_mode", ctypes.c_int),
                ("lazy_mode", ctypes.c_int), ("main_gpu", ctypes.c_int32), ("tensor_split", ctypes.c_void_p),
                ("progress_callback", ctypes.c_void_p), ("progress_callback_user_data", ctypes.c_void_p),
                ("kv_overrides", ctypes.c_void_p), ("vocab_only", ctypes.c_bool), ("check_tensors", ctypes.c_bool),
                ("use_extra_bufts", ctypes.c_bool), ("no_host", ctypes.c_bool), ("no_alloc", ctypes.c_bool),
                ("load_mtp", ctypes.c_bool)]

class ContextParams(ctypes.Structure):
    # llama_context_params of llama.h (node-llama-cpp 3.21.1)
    _fields_ = [("n_ctx", ctypes.c_uint32), ("n_batch", ctypes.c_uint32), ("n_ubatch", ctypes.c_uint32),
                ("n_seq_max", ctypes.c_uint32), ("n_rs_seq", ctypes.c_uint32), ("n_outputs_max", ctypes.c_uint32),
                ("n_outputs_max_per_seq", ctypes.c_uint32), ("n_threads", ctypes.c_int32),
                ("n_threads_batch", ctypes.c_int32), ("ctx_type", ctypes.c_int), ("rope_scaling_type", ctypes.c_int),
                ("pooling_type", ctypes.c_int), ("attention_type", ctypes.c_int), ("flash_attn_type", ctypes.c_int),
                ("rope_freq_base", ctypes.c_float), ("rope_freq_scale", ctypes.c_float),
                ("yarn_ext_factor", ctypes.c_float), ("yarn_attn_factor", ctypes.c_float),
                ("yarn_beta_fast", ctypes.c_float), ("yarn_beta_slow", ctypes.c_float),
                ("yarn_orig_ctx", ctypes.c_uint32), ("defrag_thold", ctypes.c_float),
                ("cb_eval", ctypes.c_void_p), ("cb_eval_user_data", ctypes.c_void_p),
                ("type_k", ctypes.c_int), ("type_v", ctypes.c_int),
                ("abort_callback", ctypes.c_void_p), ("abort_callback_data", ctypes.c_void_p),
                ("embeddings", ctypes.c_bool), ("offload_kqv", ctypes.c_bool), ("no_perf", ctypes.c_bool),
                ("op_offload", ctypes.c_bool), ("swa_full", ctypes.c_bool), ("kv_unified", ctypes.c_bool),
                ("samplers", ctypes.c_void_p), ("n_samplers", ctypes.c_size_t), ("ctx_other", ctypes.c_void_p)]

class Batch(ctypes.Structure):
    _fields_ = [("n_tokens", ctypes.c_int32), ("token", ctypes.c_void_p), ("embd", ctypes.c_void_p),
                ("pos", ctypes.c_void_p), ("n_seq_id", ctypes.c_void_p), ("seq_id", ctypes.c_void_p),
                ("logits", ctypes.c_void_p)]

def main():
    path = sys.argv[1]
    n_dec = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    n_prompt = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    here = os.path.dirname(os.path.abspath(__file__))
    bins = glob.glob(os.path.join(here, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "*"))[0]
    for lib in ("libggml-base.so", "libggml.v0.4.0.so"):
        ctypes.CDLL(os.path.join(bins, lib), mode=ctypes.RTLD_GLOBAL)
    L = ctypes.CDLL(os.path.join(bins, "libllama.v0.4.0.so"), mode=ctypes.RTLD_GLOBAL)
    L.llama_log_set.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    L.llama_log_set(ctypes.cast(ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)(lambda *a: None), ctypes.c_void_p), None)
    L.llama_backend_init()
    ggml = ctypes.CDLL(os.path.join(bins, "libggml.v0.4.0.so"), mode=ctypes.RTLD_GLOBAL)
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load_all_from_path(bins.encode())
    L.llama_model_default_params.restype = ModelParams
    L.llama_context_default_params.restype = ContextParams
    L.llama_model_load_from_file.argtypes = [ctypes.c_char_p, ModelParams]
    L.llama_model_load_from_file.restype = ctypes.c_void_p
    L.llama_init_from_model.argtypes = [ctypes.c_void_p, ContextParams]
    L.llama_init_from_model.restype = ctypes.c_void_p
    L.llama_batch_get_one.argtypes = [ctypes.POINTER(ctypes.c_int32), ctypes.c_int32]
    L.llama_batch_get_one.restype = Batch
    L.llama_decode.argtypes = [ctypes.c_void_p, Batch]
    L.llama_decode.restype = ctypes.c_int32
    L.llama_get_logits_ith.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    L.llama_get_logits_ith.restype = ctypes.POINTER(ctypes.c_float)
    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    if not model:
        sys.exit("cannot load " + path)
    cp = L.llama_context_default_params()
    cp.n_ctx = (n_prompt + n_dec + 255) // 256 * 256
    cp.n_batch = cp.n_ubatch = max(n_prompt, 1)
    cp.n_threads = cp.n_threads_batch = threads
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        sys.exit("cannot create a context")
    prompt = (ctypes.c_int32 * n_prompt)(*[(7 * i) % 256 for i in range(n_prompt)])
    t0, c0 = time.perf_counter(), time.process_time()
    if L.llama_decode(ctx, L.llama_batch_get_one(prompt, n_prompt)) != 0:
        sys.exit("prompt decode failed")
    t1, c1 = time.perf_counter(), time.process_time()
    tok = (ctypes.c_int32 * 1)()
    for i in range(n_dec):
        tok[0] = i % 256
        if L.llama_decode(ctx, L.llama_batch_get_one(tok, 1)) != 0:
            sys.exit("decode failed at token %d" % i)
        L.llama_get_logits_ith(ctx, -1)
    t2, c2 = time.perf_counter(), time.process_time()
    print(json.dumps({"prompt_tokens": n_prompt, "prompt_ms": 1000 * (t1 - t0), "decode_tokens": n_dec,
                      "decode_tok_s_wall": n_dec / (t2 - t1), "decode_tok_s_cpu": n_dec / max(c2 - c1, 1e-9),
                      "threads": threads}))

main()
