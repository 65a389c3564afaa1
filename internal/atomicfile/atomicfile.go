// Package atomicfile is the module's one atomic file writer: a file is written to a temporary file
// in the same directory, synced and renamed over its destination, so a reader (or a crash) sees
// either the old file or the complete new one, never a torn write.
//
// It imports only the standard library, because the deploy path (qmodel) uses it as well as the
// training side (graph checkpoints, example outputs).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// StaleAge is how old a temporary file of this package's naming pattern (".NAME.tmp*" beside
// NAME) must be before a later Write to NAME removes it as left behind by a killed writer. A live
// writer's temporary file is written and renamed within seconds; ten minutes keeps it safe.
const StaleAge = 10 * time.Minute

// Write writes data to path atomically: a temporary file in the same directory is written,
// synced, given mode 0644 and renamed over path; the directory is then synced where supported to
// make the rename durable. On error the temporary file is removed and path is left untouched.
func Write(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	if err = os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil { // make the rename durable where supported
		d.Sync()
		d.Close()
	}
	removeStale(path, time.Now().Add(-StaleAge))
	return nil
}

// removeStale removes the temporary files ".BASE.tmp*" of path's directory (BASE = path's base
// name) last modified before cutoff: those of writes to path that were killed before their
// rename. Errors are ignored: the write itself has succeeded, and a file that cannot be removed
// now is tried again on the next write.
func removeStale(path string, cutoff time.Time) {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+".tmp"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
