// Command qatgo works with qatgo integer model files.
//
//	qatgo inspect MODEL          ops, shapes, bit widths, quantization parameters and sizes
//	qatgo run MODEL INPUT        classify a PNG/PGM image or raw bytes, print the top-k classes
//	qatgo eval MODEL             accuracy on the MNIST test set; a language model's bits per byte (-text)
//	qatgo bench MODEL            batch-1 latency (p50/p99), batch-N throughput, per-op time;
//	                             prefill and decode tokens/s of a language model
//	qatgo generate MODEL         stream text from a byte-level language model
//	qatgo help [COMMAND]         usage
//
// Every command accepts -h. Exit status: 0 success, 1 a runtime failure (unreadable or invalid
// model, bad input file, ...), 2 a usage error (unknown command or flag, missing argument).
//
// Commands live in a table: a file of this package adds one with register in an init function
// (this is how `qatgo export` plugs in), and it appears in help and dispatch automatically.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
)

// command is one subcommand. run receives the arguments after the command name; it returns a
// usageError for bad invocations and any other error for runtime failures.
type command struct {
	name    string
	args    string // argument synopsis, e.g. "MODEL INPUT"
	summary string // one line
	detail  string // paragraphs printed by -h
	// setup defines the command's flags on fs and returns the function that runs it.
	setup func(fs *flag.FlagSet) func(env *env, args []string) error
}

// env carries the standard streams, so that tests can run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

var commands = map[string]*command{}

// register adds a command to the table. Registering a name twice is a programmer error.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("qatgo: command " + c.name + " registered twice")
	}
	commands[c.name] = c
}

// usageError marks an error as a usage error (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() { os.Exit(MainIO(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// Main runs the command line args (without the program name) with an empty standard input and
// returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainIO(args, strings.NewReader(""), stdout, stderr)
}

// MainIO is Main with the standard input given.
func MainIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && name == "help" {
			c, ok := commands[args[1]]
			if !ok {
				fmt.Fprintf(stderr, "qatgo help: unknown command %q\n", args[1])
				printUsage(stderr)
				return exitUsage
			}
			fs := newFlagSet(c, stdout)
			c.setup(fs)
			fs.Usage()
			return exitOK
		}
		printUsage(stdout)
		return exitOK
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "qatgo: unknown command %q\n\n", name)
		printUsage(stderr)
		return exitUsage
	}
	// The flag package prints -h's usage and parse errors to one writer: collect them, then send
	// the help a user asked for to stdout (exit 0) and a usage error to stderr (exit 2).
	var flagOut strings.Builder
	fs := newFlagSet(c, &flagOut)
	run := c.setup(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, flagOut.String())
			return exitOK
		}
		io.WriteString(stderr, flagOut.String())
		return exitUsage
	}
	fs.SetOutput(stderr)
	err := run(e, fs.Args())
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "qatgo %s: %v\nRun 'qatgo %s -h' for usage.\n", name, err, name)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "qatgo %s: %v\n", name, err)
		return exitFailure
	}
}

func newFlagSet(c *command, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("qatgo "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: qatgo %s [flags] %s\n\n%s\n", c.name, c.args, c.summary)
		if c.detail != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.detail))
		}
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(w, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "qatgo works with qatgo integer model files.\n\nusage: qatgo COMMAND [flags] [arguments]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'qatgo COMMAND -h' for a command's flags.\nExit status: 0 ok, 1 runtime failure, 2 usage error.\n")
}

// needArgs checks the positional argument count.
func needArgs(args []string, names ...string) error {
	if len(args) < len(names) {
		return usagef("missing %s", strings.Join(names[len(args):], " and "))
	}
	if len(args) > len(names) {
		return usagef("unexpected arguments %q", args[len(names):])
	}
	return nil
}

// loadFlag defines -max-work on fs. The function it returns checks the value and returns the
// runtime's load options.
func loadFlag(fs *flag.FlagSet) func() (infer.LoadOptions, error) {
	w := fs.Int64("max-work", qmodel.DefaultMaxWork, "per-sample work budget: refuse models that need more multiply-accumulates + window reads + elements per sample (0: no limit)")
	return func() (infer.LoadOptions, error) {
		switch {
		case *w < 0:
			return infer.LoadOptions{}, usagef("-max-work must be >= 0 (0: no limit), got %d", *w)
		case *w == 0:
			return infer.LoadOptions{MaxWork: -1}, nil
		}
		return infer.LoadOptions{MaxWork: *w}, nil
	}
}

// maxThreads is the largest -threads value accepted: 4 x runtime.NumCPU(). Each thread owns a
// full set of activation buffers, so an absurd count would exhaust memory before doing any work.
func maxThreads() int { return 4 * runtime.NumCPU() }

// threadsFlag defines -threads on fs. The function it returns checks the value, applies it to
// package kernels (kernels.SetMaxThreads) and returns the thread count (GOMAXPROCS for 0) and a
// function that restores the kernels' previous setting.
func threadsFlag(fs *flag.FlagSet) func() (n int, restore func(), err error) {
	t := fs.Int("threads", 0, "goroutines that split a batch, and kernel threads (0: GOMAXPROCS)")
	return func() (int, func(), error) {
		switch {
		case *t < 0:
			return 0, nil, usagef("-threads must be >= 0, got %d", *t)
		case *t > maxThreads():
			return 0, nil, usagef("-threads %d is more than %d (4 x the %d CPUs): more goroutines than that only add memory and scheduling cost", *t, maxThreads(), runtime.NumCPU())
		case *t == 0:
			return runtime.GOMAXPROCS(0), func() {}, nil
		}
		prev := kernels.SetMaxThreads(*t)
		return *t, func() { kernels.SetMaxThreads(prev) }, nil
	}
}

// limits are the values of the runtime-limit flags that bench, eval and generate share.
type limits struct {
	load    infer.LoadOptions // -max-work
	memory  int64             // -max-memory, bytes
	threads int               // -threads (GOMAXPROCS for 0)
	restore func()            // restores the kernels' thread setting
}

// limitsFlags defines -threads, -max-work and -max-memory on fs. The function it returns checks
// them in that order (applying -threads to package kernels); call the returned restore when done.
func limitsFlags(fs *flag.FlagSet) func() (limits, error) {
	threads, load, memory := threadsFlag(fs), loadFlag(fs), memoryFlag(fs)
	return func() (limits, error) {
		lo, err := load()
		if err != nil {
			return limits{}, err
		}
		budget, err := memory()
		if err != nil {
			return limits{}, err
		}
		n, restore, err := threads()
		if err != nil {
			return limits{}, err
		}
		return limits{load: lo, memory: budget, threads: n, restore: restore}, nil
	}
}
