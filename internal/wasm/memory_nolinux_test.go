//go:build unix && !linux

package wasm

import "errors"

// residentPages is not implemented outside Linux.
func residentPages([]byte) (int, error) { return 0, errors.New("mincore is checked on Linux only") }
