package infer

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// deployPackages are the packages a device binary links: the integer contract, the model file,
// the kernels and the runtime.
var deployPackages = []string{
	"github.com/qatgo/qatgo/quant",
	"github.com/qatgo/qatgo/qmodel",
	"github.com/qatgo/qatgo/kernels",
	"github.com/qatgo/qatgo/infer",
	"github.com/qatgo/qatgo/infer/textgen",
}

// deployAllowed reports whether the deploy path may import the non-standard package p: only
// golang.org/x/sys, the deploy packages themselves (and their sub-packages) and the module's
// internal packages. Everything an internal package imports is listed by go list -deps too, so a
// training-side dependency pulled in through internal/ is still caught.
func deployAllowed(p string) bool {
	if p == "golang.org/x/sys" || strings.HasPrefix(p, "golang.org/x/sys/") ||
		strings.HasPrefix(p, "github.com/qatgo/qatgo/internal/") {
		return true
	}
	for _, d := range deployPackages {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// TestDeployPathDependencies enforces the deploy-path dependency rule: quant, qmodel, kernels and
// infer import only the standard library, golang.org/x/sys and each other (no Gorgonia, no
// logrus, nothing from the training side, no cgo), on the host and on the other targets the
// kernels have special code for.
func TestDeployPathDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	for _, tc := range []struct{ name, goos, goarch, tags string }{
		{name: "host"},
		{name: "linux-amd64", goos: "linux", goarch: "amd64"},
		{name: "linux-arm64", goos: "linux", goarch: "arm64"},
		{name: "purego", tags: "purego"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{if .CgoFiles}} cgo{{end}}{{end}}"}
			if tc.tags != "" {
				args = append(args, "-tags", tc.tags)
			}
			cmd := exec.Command(goTool, append(args, deployPackages...)...)
			cmd.Env = os.Environ()
			if tc.goos != "" {
				cmd.Env = append(cmd.Env, "GOOS="+tc.goos, "GOARCH="+tc.goarch)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			seen := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				p, cgo, _ := strings.Cut(line, " ")
				seen[p] = true
				if !deployAllowed(p) {
					t.Errorf("deploy path depends on %s", p)
				}
				if cgo != "" {
					t.Errorf("deploy path package %s uses cgo", p)
				}
			}
			for _, d := range deployPackages {
				if !seen[d] {
					t.Errorf("go list did not list %s (output %q)", d, out)
				}
			}
		})
	}
}

func TestDeployAllowed(t *testing.T) {
	for _, tc := range []struct {
		pkg  string
		want bool
	}{
		{"golang.org/x/sys/cpu", true},
		{"github.com/qatgo/qatgo/quant", true},
		{"github.com/qatgo/qatgo/internal/atomicfile", true},
		{"github.com/qatgo/qatgo/kernels", true},
		{"gorgonia.org/gorgonia", false},
		{"github.com/sirupsen/logrus", false},
		{"github.com/qatgo/qatgo/graph", false},
		{"github.com/qatgo/qatgo/quantx", false},
		{"golang.org/x/sysfoo", false},
	} {
		if got := deployAllowed(tc.pkg); got != tc.want {
			t.Errorf("deployAllowed(%q) = %v, want %v", tc.pkg, got, tc.want)
		}
	}
}
