// Package flagcheck checks command-line flag values up front, with one message style for every
// command of the repository: "-NAME must be ..., got VALUE". A command calls the checks after
// parsing its flags and stops at the first error (First), before any work, so that no value is
// silently reinterpreted (a negative epoch count, a learning rate of 0 taken as "default").
package flagcheck

import (
	"fmt"
	"math"
)

// AtLeast returns an error unless v >= lo.
func AtLeast(name string, v, lo int) error {
	if v < lo {
		return fmt.Errorf("-%s must be >= %d, got %d", name, lo, v)
	}
	return nil
}

// Between returns an error unless lo <= v <= hi.
func Between(name string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("-%s must be in [%d,%d], got %d", name, lo, hi, v)
	}
	return nil
}

// Positive returns an error unless v is finite and > 0 (learning rates, temperatures).
func Positive(name string, v float64) error {
	if !(v > 0) || math.IsInf(v, 0) {
		return fmt.Errorf("-%s must be a finite number > 0, got %v", name, v)
	}
	return nil
}

// NonNegative returns an error unless v is finite and >= 0 (weight decay, strengths).
func NonNegative(name string, v float64) error {
	if !(v >= 0) || math.IsInf(v, 0) {
		return fmt.Errorf("-%s must be a finite number >= 0, got %v", name, v)
	}
	return nil
}

// Within returns an error unless v is finite and lo <= v <= hi.
func Within(name string, v, lo, hi float64) error {
	if !(v >= lo && v <= hi) {
		return fmt.Errorf("-%s must be in [%g,%g], got %v", name, lo, hi, v)
	}
	return nil
}

// NotEmpty returns an error when v is empty.
func NotEmpty(name, v string) error {
	if v == "" {
		return fmt.Errorf("-%s must not be empty", name)
	}
	return nil
}

// NoArgs returns an error when a command that takes only flags got positional arguments (often
// a flag typed without its dash, or a value after a boolean flag).
func NoArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q (this command takes flags only)", args)
	}
	return nil
}

// First returns the first non-nil error.
func First(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
