//go:build race

package infer

// raceEnabled: the race detector changes allocation counts (sync.Pool drops items at random).
const raceEnabled = true
