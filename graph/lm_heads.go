package graph

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// headsLayout is what splitHeadsOp and mergeHeadsOp share: the attention geometry and the rotary
// position embedding tables.
type headsLayout struct {
	pureOp
	batch, seq, heads, hd int
	base                  float64 // RoPE base (theta); 0 = no rotation
	cos, sin              []float64
	tokens, perHead       tensor.Shape // [B*T, H*hd] and [B*H, T, hd]
}

func newHeadsLayout(batch, seq, heads, hd int, base float64) headsLayout {
	l := headsLayout{batch: batch, seq: seq, heads: heads, hd: hd, base: base,
		tokens: tensor.Shape{batch * seq, heads * hd}, perHead: tensor.Shape{batch * heads, seq, hd}}
	if base > 0 {
		l.cos, l.sin = ropeTables(seq, hd, base)
	}
	return l
}

// headsLayoutOf checks the arguments of SplitHeads (split) or MergeHeads against the input shape s.
func headsLayoutOf(split bool, s tensor.Shape, batch, seq, heads int, base float64) (headsLayout, error) {
	name := "MergeHeads"
	if split {
		name = "SplitHeads"
	}
	if batch < 1 || seq < 1 || heads < 1 || base < 0 {
		return headsLayout{}, fmt.Errorf("graph: %s: batch %d, seq %d, heads %d, base %v", name, batch, seq, heads, base)
	}
	var hd int
	switch {
	case split && s.Dims() == 2 && s[0] == batch*seq && s[1]%heads == 0:
		hd = s[1] / heads
	case !split && s.Dims() == 3 && s[0] == batch*heads && s[1] == seq:
		hd = s[2]
	default:
		return headsLayout{}, fmt.Errorf("graph: %s: input shape %v does not fit batch %d, seq %d, heads %d", name, s, batch, seq, heads)
	}
	if base > 0 && hd%2 != 0 {
		return headsLayout{}, fmt.Errorf("graph: RoPE needs an even head dimension, got %d", hd)
	}
	return newHeadsLayout(batch, seq, heads, hd, base), nil
}

func (l *headsLayout) params() string {
	return fmt.Sprintf("b%d t%d h%d hd%d base%g", l.batch, l.seq, l.heads, l.hd, l.base)
}

// moveHeads moves element (b, t, h, i) between the [B*T, H*hd] and [B*H, T, hd] layouts, rotating
// each (2p, 2p+1) pair by angle t*base^(-2p/hd) (split) or by its negative (merge).
func moveHeads[F float32 | float64](l *headsLayout, merge bool, out, x []F) {
	B, T, H, hd := l.batch, l.seq, l.heads, l.hd
	half := hd / 2
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			for h := 0; h < H; h++ {
				tok := ((b*T)+t)*H*hd + h*hd
				hed := ((b*H+h)*T + t) * hd
				src, dst := tok, hed
				if merge {
					src, dst = hed, tok
				}
				xs, ys := x[src:src+hd], out[dst:dst+hd]
				if l.base == 0 {
					copy(ys, xs)
					continue
				}
				cs, sn := l.cos[t*half:(t+1)*half], l.sin[t*half:(t+1)*half]
				for p := 0; p < half; p++ {
					c, s := F(cs[p]), F(sn[p])
					if merge {
						s = -s
					}
					x0, x1 := xs[2*p], xs[2*p+1]
					ys[2*p] = x0*c - x1*s
					ys[2*p+1] = x0*s + x1*c
				}
			}
		}
	}
}

// ropeTables returns cos and sin of t*base^(-2p/hd) for t < seq, p < hd/2, row-major [seq, hd/2].
func ropeTables(seq, hd int, base float64) (cos, sin []float64) {
	half := hd / 2
	cos, sin = make([]float64, seq*half), make([]float64, seq*half)
	for t := 0; t < seq; t++ {
		for p := 0; p < half; p++ {
			a := float64(t) * math.Pow(base, -2*float64(p)/float64(hd))
			cos[t*half+p], sin[t*half+p] = math.Cos(a), math.Sin(a)
		}
	}
	return cos, sin
}
