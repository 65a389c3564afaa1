package infer

// PrefillRowsFor returns the number of rows a session created with opt holds: opt.PrefillRows
// (DefaultPrefillRows for 0) capped at the context length.
func (lm *LM) PrefillRowsFor(opt LMSessionOptions) int {
	rows := opt.PrefillRows
	if rows <= 0 {
		rows = DefaultPrefillRows
	}
	return min(rows, lm.ctx)
}

// SessionBytes returns the bytes NewSessionWith(opt) allocates: the int8 KV cache for the full
// context, the activation buffers of PrefillRowsFor(opt) rows, and scratch. It allocates
// nothing, so a caller can check a memory budget first (the kernels' own per-call scratch is not
// included).
func (lm *LM) SessionBytes(opt LMSessionOptions) int64 {
	rows := int64(lm.PrefillRowsFor(opt))
	n := lm.KVCacheBytes() + 4*int64(lm.scratchN) + 8*rows
	for t, w := range lm.width {
		switch lm.kind[t] {
		case bufI8:
			n += rows * int64(w)
		case bufI32, bufF32:
			n += 4 * rows * int64(w)
		}
	}
	return n
}

// MaxPrefillRowsWithin returns the largest row count up to rows (capped at the context length)
// whose session fits in budget bytes, or 0 when even one row does not fit.
func (lm *LM) MaxPrefillRowsWithin(budget int64, rows int) int {
	hi := lm.PrefillRowsFor(LMSessionOptions{PrefillRows: rows})
	if lm.SessionBytes(LMSessionOptions{PrefillRows: hi}) <= budget {
		return hi
	}
	lo := 0 // SessionBytes grows with rows: binary search for the largest fitting count
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if lm.SessionBytes(LMSessionOptions{PrefillRows: mid}) <= budget {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}
