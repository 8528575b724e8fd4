//go:build race

package images_test

// raceEnabled: the test binary runs with the race detector, under which
// reading a large layer in-process takes many times longer.
const raceEnabled = true
