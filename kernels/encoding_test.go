package kernels

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestNEONEncoding disassembles every WORD-encoded instruction of neon_arm64.s with llvm-mc
// (skipped if it is not installed) and checks it against the disassembly in its comment.
func TestNEONEncoding(t *testing.T) {
	mc, err := exec.LookPath("llvm-mc")
	if err != nil {
		t.Skip("llvm-mc not installed")
	}
	src, err := os.ReadFile("neon_arm64.s")
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`\tWORD \$0x([0-9a-f]{8}) // (.*)`).FindAllSubmatch(src, -1)
	if len(lines) == 0 {
		t.Fatal("no WORD directives found")
	}
	var in bytes.Buffer
	for _, l := range lines {
		var w uint32
		fmt.Sscanf(string(l[1]), "%x", &w)
		fmt.Fprintf(&in, "0x%02x 0x%02x 0x%02x 0x%02x\n", byte(w), byte(w>>8), byte(w>>16), byte(w>>24))
	}
	cmd := exec.Command(mc, "--disassemble", "-triple=aarch64", "-mattr=+dotprod")
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("llvm-mc failed: %v", err)
	}
	var got []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.Join(strings.Fields(l), " ")
		if l == "" || strings.HasPrefix(l, ".") {
			continue
		}
		got = append(got, l)
	}
	if len(got) != len(lines) {
		t.Fatalf("llvm-mc decoded %d instructions, the source has %d", len(got), len(lines))
	}
	for i, l := range lines {
		want := strings.ToLower(strings.Join(strings.Fields(string(l[2])), " "))
		if got[i] != want {
			t.Errorf("WORD $0x%s: llvm-mc says %q, comment says %q", l[1], got[i], want)
		}
	}
}
