package kernels

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedAssembly runs gen_asm.go in a temporary directory and checks that its output
// matches the committed assembly files (no hand edits, no stale generator).
func TestGeneratedAssembly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	src, err := os.ReadFile("gen_asm.go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gen_asm.go"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goTool, "run", "gen_asm.go")
	cmd.Dir = dir
	// Build for the host even when the tests are cross-compiled (GOARCH=arm64 under qemu).
	cmd.Env = append(os.Environ(), "GO111MODULE=off", "GOFLAGS=", "GOOS=", "GOARCH=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_asm.go: %v\n%s", err, out)
	}
	for _, name := range []string{"avx512_amd64.s", "int4_amd64.s", "avx2_amd64.s", "neon_arm64.s"} {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from the output of gen_asm.go: run go generate", name)
		}
	}
}
