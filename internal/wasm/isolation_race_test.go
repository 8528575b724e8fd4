//go:build race

package wasm

// raceEnabled: the race detector shadows every heap byte, so resident
// memory measurements mean nothing under it.
const raceEnabled = true
