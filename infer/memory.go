package infer

import "github.com/qatgo/qatgo/qmodel"

// Memory of a batch. Validation bounds a model's activations per sample (qmodel's
// MaxActivationElements and MaxTotalActivations), but a batch multiplies them: a valid model of a
// few hundred bytes with a 16M-element float32 input needs 16 GiB of input alone at batch 256. A
// caller that chooses the batch size (a CLI flag, a server) checks SessionBytes + InputBytes
// against its budget before running, or lets the session refuse (SessionOptions.MaxBytes), or
// picks the batch with MaxBatchWithin.

// InputBytes returns the bytes of a batch of inputs as the caller passes them (float32 for a
// float32 or int8 input through Run, one byte per element for uint8).
func (md *Model) InputBytes(batch int) int64 {
	per := int64(md.inN)
	if md.inType != qmodel.Uint8 {
		per *= 4
	}
	return per * int64(max(batch, 0))
}

// SessionBytes returns an upper bound of the bytes a session created with opt allocates to run
// batches of up to batch samples: the activation buffers of every lane that takes part (a lane
// holds a micro-batch, or the whole batch with KeepIntermediate), the lanes' kernel scratch and
// fixed overhead, and the gathered outputs. The caller's input is not included (see InputBytes).
func (md *Model) SessionBytes(batch int, opt SessionOptions) int64 {
	batch = max(batch, 1)
	p := md.plan
	if opt.KeepIntermediate {
		p = md.makePlan(true)
	}
	var per int64 // bytes of the planned buffers per sample
	for i, n := range p.size {
		if p.isFloat[i] {
			n *= 4
		}
		per += int64(n)
	}
	// Samples held per lane, as Session.split sizes them for any batch up to batch: one lane runs
	// batches below 2*minChunk (or all with one thread), several take chunks.
	lane0, others := batch, 0
	if !opt.KeepIntermediate {
		mb := max(1, MicroBatchBytes/int(min(max(per, 1), int64(MicroBatchBytes))))
		lane0 = min(mb, batch)
		if nw := min(max(opt.Threads, 1), batch/minChunk); nw > 1 {
			chunk := max(minChunk, min(mb, (batch+4*nw-1)/(4*nw)))
			lane0 = min(mb, max(min(batch, 2*minChunk-1), chunk))
			others = (nw - 1) * min(mb, chunk)
		}
	}
	lanes := int64(max(opt.Threads, 1)) * (int64(md.scratchN) + 4*int64(md.maxPoolC) + laneOverhead)
	out := 4 * int64(md.outN) * int64(batch)
	if md.int8Out >= 0 {
		out += int64(md.qm.Tensors[md.int8Out].NumElements()) * int64(batch)
	}
	return int64(lane0+others)*per + lanes + out
}

// laneOverhead bounds the fixed allocations of a session lane that do not grow with the batch
// (slice headers, the fused convolutions' scratch, kernel free lists): measured at 10-30 KB.
const laneOverhead = 64 << 10

// MaxBatchWithin returns the largest batch size in [1, batch] whose input and session buffers
// (InputBytes + SessionBytes) fit in budget bytes, or 0 when not even one sample fits.
func (md *Model) MaxBatchWithin(budget int64, batch int, opt SessionOptions) int {
	fits := func(b int) bool { return md.InputBytes(b)+md.SessionBytes(b, opt) <= budget }
	if batch < 1 || !fits(1) {
		return 0
	}
	lo, hi := 1, batch // fits(lo); the bytes grow with the batch
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}
