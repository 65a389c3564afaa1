"""Calls vector ops of llama.cpp's CPU backend (node-llama-cpp's prebuilt libggml-cpu-VARIANT.so)
through ctypes, for qatgo's bit-exact tests of its model of that arithmetic (fakequant).

usage: python3 ggmlops.py VARIANT < request.json > response.json
request:  {"dot": [[xbits, ybits], ...], "softmax": [[wbits, maxbits], ...]}  (float32 bit patterns)
response: {"dot": [sbits, ...], "softmax": [[ybits, sum], ...]}
  dot:     ggml_vec_dot_f32(n, &s, 0, x, 0, y, 0, 1)
  softmax: sum = ggml_vec_soft_max_f32(n, y, w, max), y = exp(w - max) as ggml computes it
"""
import ctypes
import json
import os
import struct
import sys

bins = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64")
ctypes.CDLL(os.path.join(bins, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
cpu = ctypes.CDLL(os.path.join(bins, "libggml-cpu-%s.so" % sys.argv[1]))
F = ctypes.c_float
cpu.ggml_vec_dot_f32.argtypes = [ctypes.c_int, ctypes.POINTER(F), ctypes.c_size_t, ctypes.c_void_p,
                                 ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
cpu.ggml_vec_soft_max_f32.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, F]
cpu.ggml_vec_soft_max_f32.restype = ctypes.c_double


def floats(bits):
    return (F * len(bits))(*[struct.unpack("<f", struct.pack("<I", b))[0] for b in bits])


def tobits(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


req = json.load(sys.stdin)
out = {"dot": [], "softmax": []}
for x, y in req.get("dot", []):
    s = F()
    cpu.ggml_vec_dot_f32(len(x), ctypes.byref(s), 0, floats(x), 0, floats(y), 0, 1)
    out["dot"].append(tobits(s.value))
for w, mx in req.get("softmax", []):
    y = (F * len(w))()
    total = cpu.ggml_vec_soft_max_f32(len(w), y, floats(w), floats([mx])[0])
    out["softmax"].append([[tobits(v) for v in y], total])
json.dump(out, sys.stdout)
