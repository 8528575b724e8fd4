// Package main is an Isotope function written exactly as for Fission's Go
// environment: an exported handler with net/http's signature and no main.
// The go-wasm builder wraps it and compiles it to a WebAssembly reactor.
package main

import (
	"fmt"
	"net/http"
)

// Handler greets the caller by the name given in ?name=.
func Handler(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "world"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Hello, %s! (from WebAssembly, %s %s)\n", name, r.Method, r.URL.Path)
}
