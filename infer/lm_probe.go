package infer

import "fmt"

// Activation returns the int8 values of the model's activation tensor name for the rows of the
// last Prefill or Decode call (rows x elements per token, row-major; the last chunk of a long
// Prefill), in the tensor's own quantization (Model.Tensors[...].Quant). It is the probe of
// export's per-layer parity report. The slice belongs to the session and is valid until the next
// call. An unknown name or a tensor that is not int8 is an error.
func (s *LMSession) Activation(name string) ([]int8, error) {
	m := s.lm.qm
	for i := range m.Tensors {
		if m.Tensors[i].Name != name {
			continue
		}
		if s.lm.kind[i] != bufI8 {
			return nil, fmt.Errorf("infer: tensor %q is not an int8 activation", name)
		}
		return s.i8[i][:s.lastRows*s.lm.width[i]], nil
	}
	return nil, fmt.Errorf("infer: model %q has no tensor %q", m.Name, name)
}
