//go:build race

package kernels

// raceEnabled: allocation counts are not meaningful under the race detector (sync.Pool drops
// items at random).
const raceEnabled = true
