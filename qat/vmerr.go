package qat

import (
	"errors"
	"fmt"

	G "gorgonia.org/gorgonia"
)

// opError returns the error an op itself returned inside a Gorgonia TapeMachine run, instead of
// the machine's wrapper ("PC 38. Failed to execute instruction ..." followed by the whole
// instruction). Gorgonia v0.9.18 wraps the op's error with github.com/pkg/errors (whose wrappers
// have Cause) inside an error type with Err and Node methods but no Unwrap, so errors.Is cannot
// see through it. opError follows Err and then Cause to the innermost error and prefixes the
// failing node's name; the op's own error chain stays intact (errors.Is works on the result).
// Errors of any other form are returned unchanged.
func opError(err error) error {
	var vmErr interface {
		Err() error
		Node() *G.Node
	}
	if err == nil || !errors.As(err, &vmErr) {
		return err
	}
	inner := vmErr.Err()
	for inner != nil {
		c, ok := inner.(interface{ Cause() error })
		if !ok || c.Cause() == nil {
			break
		}
		inner = c.Cause()
	}
	if inner == nil {
		return err
	}
	if n := vmErr.Node(); n != nil && n.Name() != "" {
		return fmt.Errorf("node %s: %w", n.Name(), inner)
	}
	return inner
}
