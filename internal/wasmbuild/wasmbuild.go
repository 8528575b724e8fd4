// Package wasmbuild is what Isotope's builders for compiled languages
// (package cwasm for C and C++, package rustwasm for Rust) share: reading
// SRC_PKG and DEPLOY_PKG the way a Fission build script does, copying the
// source to a work directory, running a toolchain with its output in the
// build log and its first diagnostic (file:line) in the error, naming the
// Debian packages of a toolchain that is missing, running a user's own
// build script, and checking that what was built is a module Isotope's
// WebAssembly runtime can serve.
//
// The builders make WAGI modules, WASI preview 1 commands whose main
// serves one request (docs/functions-wagi.md), and rustwasm also Rust
// handlers that speak Isotope's reactor ABI. The output layout is the
// go-wasm builder's: DEPLOY_PKG is a directory holding main.wasm, which
// the fetcher zips into the deploy archive.
package wasmbuild

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Output is the file name of the module inside DEPLOY_PKG.
const Output = "main.wasm"

// ParseArgs parses `isotope build <name> [flags] [SRC [DEPLOY]]`: define
// adds the builder's own flags; SRC and DEPLOY default to $SRC_PKG and
// $DEPLOY_PKG in env, as a Fission build script reads them.
func ParseArgs(name string, args, env []string, log io.Writer, define func(*flag.FlagSet)) (src, deploy string, err error) {
	fset := flag.NewFlagSet("isotope build "+name, flag.ContinueOnError)
	fset.SetOutput(log)
	if define != nil {
		define(fset)
	}
	if err := fset.Parse(args); err != nil {
		return "", "", err
	}
	src, deploy = Getenv(env, "SRC_PKG"), Getenv(env, "DEPLOY_PKG")
	switch fset.NArg() {
	case 2:
		src, deploy = fset.Arg(0), fset.Arg(1)
	case 1:
		src = fset.Arg(0)
	case 0:
	default:
		return "", "", fmt.Errorf("too many arguments: %q", fset.Args())
	}
	if src == "" || deploy == "" {
		return "", "", errors.New("SRC_PKG and DEPLOY_PKG must be set (or given as arguments)")
	}
	return src, deploy, nil
}

// Getenv returns the last value of key in env.
func Getenv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if val, ok := strings.CutPrefix(kv, key+"="); ok {
			v = val
		}
	}
	return v
}

// Setenv returns env with key set to value (earlier values removed, so
// the result does not depend on which of duplicates a program reads).
func Setenv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}
