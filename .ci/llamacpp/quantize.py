#!/usr/bin/env python3
"""Quantizes a GGUF file with llama.cpp's own quantizer (llama_model_quantize of the libllama that
node-llama-cpp ships), for qatgo's tests and its PTQ baseline. Usage:
    quantize.py IN.gguf OUT.gguf FTYPE [default]   FTYPE: q8_0 (7), q4_0 (2) or f16 (1)
Every 2-D weight, token_embd and output included, gets the type ("pure"); norms stay F32. With
"default", llama-quantize's own choices apply (e.g. a Q6_K output tensor for Q4_0)."""
import ctypes, glob, os, sys

FTYPES = {"f16": 1, "q4_0": 2, "q8_0": 7}

class Params(ctypes.Structure):
    # llama_model_quantize_params of llama.h (node-llama-cpp 3.21.1)
    _fields_ = [("nthread", ctypes.c_int32), ("ftype", ctypes.c_int), ("output_tensor_type", ctypes.c_int),
                ("token_embedding_type", ctypes.c_int), ("allow_requantize", ctypes.c_bool),
                ("quantize_output_tensor", ctypes.c_bool), ("only_copy", ctypes.c_bool), ("pure", ctypes.c_bool),
                ("keep_split", ctypes.c_bool), ("dry_run", ctypes.c_bool), ("imatrix", ctypes.c_void_p),
                ("kv_overrides", ctypes.c_void_p), ("tt_overrides", ctypes.c_void_p),
                ("prune_layers", ctypes.c_void_p), ("max_buf_size", ctypes.c_size_t)]

def main():
    src, dst, ftype = sys.argv[1], sys.argv[2], FTYPES[sys.argv[3].lower()]
    here = os.path.dirname(os.path.abspath(__file__))
    bins = glob.glob(os.path.join(here, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "*"))[0]
    for lib in ("libggml-base.so", "libggml.v0.4.0.so"):
        ctypes.CDLL(os.path.join(bins, lib), mode=ctypes.RTLD_GLOBAL)
    llama = ctypes.CDLL(os.path.join(bins, "libllama.v0.4.0.so"), mode=ctypes.RTLD_GLOBAL)
    llama.llama_model_quantize_default_params.restype = Params
    llama.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Params)]
    llama.llama_model_quantize.restype = ctypes.c_uint32
    llama.llama_backend_init()
    p = llama.llama_model_quantize_default_params()
    p.ftype, p.nthread = ftype, 1
    p.pure = len(sys.argv) < 5 or sys.argv[4] != "default"
    rc = llama.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    sys.exit(1 if rc else 0)

main()
