package fgemm

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedAssembly runs gen_asm.go into a temporary directory and checks that its output
// matches the committed assembly files (no hand edits, no stale generator).
func TestGeneratedAssembly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	dir := t.TempDir()
	cmd := exec.Command(goTool, "run", "gen_asm.go", "-out", dir)
	// Build for the host even when the tests are cross-compiled (GOARCH=arm64 under qemu).
	cmd.Env = append(os.Environ(), "GOOS=", "GOARCH=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_asm.go: %v\n%s", err, out)
	}
	for _, name := range []string{"kernels_amd64.s", "kernels_arm64.s"} {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from the output of gen_asm.go: run go generate ./fgemm", name)
		}
	}
}
