package graph

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// floatKernelOp is a custom op of this package whose forward pass is one kernel per float dtype:
// the per-channel ops (chan_*.go) and the language-model ops (lm_*.go). runKernel does the rest of
// Do / UsePreallocDo for all of them: input checks, the output buffer (internal/opbuf) and the
// dtype switch.
type floatKernelOp interface {
	fmt.Stringer
	Arity() int
	// outShape is the output shape; runKernel does not modify it.
	outShape() tensor.Shape
	kernel32(out []float32, in [][]float32) error
	kernel64(out []float64, in [][]float64) error
}

// runKernel runs op on vals, writing into prealloc when it is a fitting tensor (UsePreallocDo)
// and otherwise into the tensor op's buffer keeps from run to run (Do passes a nil prealloc).
func runKernel(op floatKernelOp, buf *opbuf.Buffer, prealloc G.Value, vals []G.Value) (G.Value, error) {
	if len(vals) != op.Arity() || len(vals) > 3 {
		return nil, fmt.Errorf("graph: %v: %d inputs", op, len(vals))
	}
	in0, ok := vals[0].(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("graph: %v: input is %T, not a tensor", op, vals[0])
	}
	var dense [3]*tensor.Dense
	for i, v := range vals {
		dense[i], _ = v.(*tensor.Dense)
	}
	out, err := buf.Output(prealloc, in0.Dtype(), op.outShape(), dense[:len(vals)]...)
	if err != nil {
		return nil, fmt.Errorf("graph: %v: %w", op, err)
	}
	switch d := out.Data().(type) {
	case []float32:
		var in [][]float32
		if in, err = dataOf[float32](vals); err == nil {
			err = op.kernel32(d, in)
		}
	case []float64:
		var in [][]float64
		if in, err = dataOf[float64](vals); err == nil {
			err = op.kernel64(d, in)
		}
	default:
		err = fmt.Errorf("unsupported dtype %v", out.Dtype())
	}
	if err != nil {
		return nil, fmt.Errorf("graph: %v: %w", op, err)
	}
	return out, nil
}

func dataOf[F float32 | float64](vals []G.Value) ([][]F, error) {
	out := make([][]F, len(vals))
	for i, v := range vals {
		t, ok := v.(tensor.Tensor)
		if !ok {
			return nil, fmt.Errorf("input %d is %T, not a tensor", i, v)
		}
		d, ok := t.Data().([]F)
		if !ok {
			return nil, fmt.Errorf("input %d has dtype %v", i, t.Dtype())
		}
		out[i] = d
	}
	return out, nil
}

// opHash is the Hashcode of an op whose String encodes every parameter (Gorgonia merges nodes
// with equal hashes).
func opHash(op fmt.Stringer) uint32 {
	h := fnv.New32a()
	writeOpHash(h, op)
	return h.Sum32()
}

func writeOpHash(h hash.Hash, op fmt.Stringer) { fmt.Fprint(h, op.String()) }

// pureOp holds the methods every custom op of this package shares: it neither returns a pointer
// into its input, nor calls out to a device, nor overwrites an input.
type pureOp struct{}

func (pureOp) ReturnsPtr() bool     { return false }
func (pureOp) CallsExtern() bool    { return false }
func (pureOp) OverwritesInput() int { return -1 }
