package llama

import "github.com/qatgo/qatgo/qat"

// Preset is qat.GGMLPreset: llama.cpp's CPU arithmetic as a quantizer (weights and matmul inputs
// rounded as llama.cpp rounds them, its float32 matmul, RMSNorm, SwiGLU and attention), for
// models written by Encode at Preset.Type. Use it as graph.LMOptions.Quant, or prepare the
// model with Preset{...}.QConfig() (needed with LearnScale) and export with FromPrepared.
type Preset = qat.GGMLPreset
