package infer

import (
	"flag"
	"os"
	"testing"
)

// fuzzMinimizeTime is the default of -fuzzminimizetime when this package is fuzzed. The testing
// package's own default, 60 s, is spent on every new interesting input: its byte-wise
// minimizer tries removing every range of bytes (quadratic in the input's length), and a model
// file of a kilobyte or two never finishes, so a 45 s fuzzing run stopped after its first new
// input (golang/go#48820) and reported a handful of executions. A crasher is still written to
// testdata/fuzz, minimized for this long.
const fuzzMinimizeTime = "2s"

// TestMain sets -fuzzminimizetime to fuzzMinimizeTime when fuzzing, unless it was given.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		given := false
		flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
		if !given {
			if err := flag.Set("test.fuzzminimizetime", fuzzMinimizeTime); err != nil {
				panic(err)
			}
		}
	}
	os.Exit(m.Run())
}
