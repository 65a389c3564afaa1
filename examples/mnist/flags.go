package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/qatgo/qatgo/internal/flagcheck"
	"github.com/qatgo/qatgo/qmodel"
)

// maxBatch bounds -batch: larger mini-batches only exhaust memory in Gorgonia's graphs.
const maxBatch = 1 << 16

// validate checks every flag value before any work, so that none is silently reinterpreted.
func (o *options) validate() error {
	return flagcheck.First(
		flagcheck.AtLeast("epochs", o.epochs, 0), // 0: the model's default
		qatEpochsCheck(o.qatEpochs),
		flagcheck.Between("batch", o.batch, 1, maxBatch),
		flagcheck.Positive("lr", o.lr),
		flagcheck.Positive("qat-lr", o.qatLR),
		flagcheck.AtLeast("train-limit", o.trainLimit, 0),
		flagcheck.AtLeast("test-limit", o.testLimit, 0),
		flagcheck.AtLeast("calib", o.calib, 1),
		flagcheck.NotEmpty("out", o.out),
		bitsCheck(o.bits),
		convCheck(o.conv),
		resumeCheck(o.resume, o.from),
		requantCheck(o.requant),
	)
}

func qatEpochsCheck(n int) error {
	if n < 1 {
		return fmt.Errorf("-qat-epochs must be >= 1, got %d (QAT trains at least one epoch per bit width; -bits \"\" skips PTQ and QAT)", n)
	}
	return nil
}

// parseBits returns the bit widths of -bits (8, 4 or 2, comma-separated; empty entries skipped).
func parseBits(s string) ([]int, error) {
	var bits []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		b, err := strconv.Atoi(f)
		if err != nil || (b != 8 && b != 4 && b != 2) {
			return nil, fmt.Errorf("-bits: %q is not 8, 4 or 2", f)
		}
		bits = append(bits, b)
	}
	return bits, nil
}

func bitsCheck(s string) error {
	_, err := parseBits(s)
	return err
}

func convCheck(c string) error {
	if c != "convop" && c != "gorgonia" {
		return fmt.Errorf("-conv %q: want convop or gorgonia", c)
	}
	return nil
}

func requantCheck(r string) error {
	if r != qmodel.RequantDefault && r != qmodel.RequantOnnxruntime {
		return fmt.Errorf("-requant %q: want %s or %s", r, qmodel.RequantDefault, qmodel.RequantOnnxruntime)
	}
	return nil
}

func resumeCheck(resume bool, from string) error {
	if resume && from == "" {
		return fmt.Errorf("-resume needs -from (the checkpoint to finish training)")
	}
	return nil
}

// unfinishedError is the error for a -from checkpoint with fewer epochs than -epochs.
func unfinishedError(path string, done, want int) error {
	return fmt.Errorf("-from %s: the checkpoint holds %d of the %d float epochs (-epochs): it is unfinished. Pass -resume to train the remaining %d epochs, or -epochs %d to use it as it is",
		path, done, want, want-done, done)
}
