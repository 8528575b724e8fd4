// The examples are user code, built by the platform (not by `go build ./...`
// of the main module), so they live in a module of their own.
module isotope.dev/examples

go 1.24
