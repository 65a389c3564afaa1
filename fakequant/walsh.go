package fakequant

import (
	"errors"
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// WalshHadamard rotates x (float32 or float64, rank >= 1) along its last axis n, a power of two,
// by the orthonormal Walsh-Hadamard matrix H_n / sqrt(n) (Sylvester order, no random signs): the
// transform an integer runtime applies online (qmodel's Hadamard op). H_n / sqrt(n) is symmetric
// and its own inverse, so it is also the rotation a weight folds in. Its gradient is the same
// transform.
func WalshHadamard(x *G.Node) (*G.Node, error) {
	if x == nil || x.Dims() < 1 {
		return nil, errors.New("fakequant: WalshHadamard needs a node of rank >= 1")
	}
	if dt := x.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("fakequant: WalshHadamard: dtype %v (want float32 or float64)", dt)
	}
	shape := x.Shape()
	n := shape[len(shape)-1]
	if n < 1 || n&(n-1) != 0 {
		return nil, fmt.Errorf("fakequant: WalshHadamard: last axis %d is not a power of two", n)
	}
	signs := make([]float64, n)
	for i := range signs {
		signs[i] = 1
	}
	return G.ApplyOp(&hadamardOp{n: n, signs: signs, dims: x.Dims(), id: lastID.Add(1)}, x)
}

// RandomHadamardMatrix returns QuaRot's randomised Hadamard rotation R = D H_n / sqrt(n) for
// n a power of two (D = diag(RandomSigns(n, seed))), n x n row-major: the matrix Hadamard(x,
// seed) multiplies by. It returns an error for other n.
func RandomHadamardMatrix(n int, seed uint64) ([]float64, error) {
	if n < 1 || n&(n-1) != 0 {
		return nil, fmt.Errorf("fakequant: Hadamard size %d is not a power of two", n)
	}
	return hadamardMatrix(RandomSigns(n, seed)), nil
}
