package kernels

// AMX reports whether the selected path runs the convolutions that have an AMX plan on Intel
// AMX-INT8 tiles: the path is avx512vnni, the CPU has AMX-INT8, Linux granted the process the
// tile state and the environment variable QATGO_AMX is not 0 (set it to 0 to compare with the
// VNNI kernels). The results are identical either way.
func AMX() bool { return amxOn() }

// amxGemmMinK is the shortest K for which the AMX GEMM (gemmamx_amd64.go) runs: with fewer
// 64-byte chunks the fixed costs of a tile call (LDTILECFG and TILERELEASE took 55 ns) and of the
// int32 round trip are not paid back (BenchmarkLMPrefill: the tiny model, K = 64 and 128 at 32
// rows, 4.5-4.7 us per token on AMX against 4.1 without; the stories15m-shaped one, K = 288 and
// 768, 72 against 81-83).
const amxGemmMinK = 256

// AMX plan of a FusedConv (Intel AMX-INT8, used by the AVX-512 VNNI path where the CPU and the
// OS allow it; see convamx_amd64.go).
//
// The convolution is one matrix product per kernel row h: with stride 1, conv pixel (y, x)
// reads kernel row h as the KW*InC bytes at ((y+h)*pw + x)*InC of the padded u8 image (pw its
// padded width), so the pixels taken in "padded raster" order m = y*pw + x (x up to pw-1, the
// last KW-1 of each row being pixels that are never output) read rows m*InC apart. One tile
// load then fetches the A block of 16 consecutive m, and the weight panel of the VNNI kernels
// ([tile][kh][ng][16][4]) is already the B layout of TDPBUSD (K groups of 4 bytes by 16
// channels). A kernel row's ng groups are split into chunks of at most 16 groups (64 bytes).
// The int32 sums of all m go to a scratch matrix; one AVX-512 pass then pools (2x2 max), adds
// the per-channel offset and requantizes with the VNNI kernels' epilogue table, so the results
// are bit-identical to them.
type amxPlan struct {
	cfg    [64]byte // LDTILECFG operand: tmm0-3 C (16x16 int32), tmm4-5 A, tmm6-7 B
	chunks int      // chunks per kernel row
	cb     int      // bytes per chunk (4 * groups per chunk)
	mpairs int      // pairs of 16-row M tiles covering the OutH*pw raster rows
}

// amxEligible reports whether the AMX kernels serve f: stride 1 in both directions (the raster
// trick), whole 16-channel tiles, kernel rows that split into equal chunks of at most 64 bytes,
// at least 4 input channels (fewer ones have their own kernels) and at least 64 multiply-adds
// per output (below that a tile product is mostly padding, and the VNNI kernels, which
// requantize in registers, were faster: a 1x1 convolution 16->16 on 28x28 took 4.05 us with
// AMX and 3.2 us without, BenchmarkOps/DSNet).
func (f *FusedConv) amxEligible() bool {
	s := f.s
	if s.StrideH != 1 || s.StrideW != 1 || s.OutC%panelN != 0 || s.InC < 4 || s.K() < 64 {
		return false
	}
	chunks := (f.ng + 15) / 16
	return f.ng%chunks == 0
}

// newAMXPlan builds f's AMX plan (f.ng and the panel must be set; f must be amxEligible).
func newAMXPlan(f *FusedConv) *amxPlan {
	s := f.s
	p := &amxPlan{chunks: (f.ng + 15) / 16}
	p.cb = 4 * f.ng / p.chunks
	pw := s.InW + s.PadLeft + s.PadRight
	p.mpairs = (s.OutH()*pw + 31) / 32
	p.cfg[0] = 1 // palette 1
	for t := 0; t < 8; t++ {
		colsb, rows := 64, 16 // C tiles: 16 rows of 16 int32
		switch {
		case t == 4 || t == 5: // A: 16 raster rows of one chunk
			colsb = p.cb
		case t >= 6: // B: the chunk's groups, 16 channels x 4 bytes each
			rows = p.cb / 4
		}
		p.cfg[16+2*t] = byte(colsb)
		p.cfg[48+t] = byte(rows)
	}
	return p
}
