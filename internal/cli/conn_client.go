package cli

import "isotope.dev/isotope/internal/store"

// newStoreClient is replaced by the HTTP client of package client once it
// exists (TEMPORARY: keeps package cli compiling meanwhile).
var newStoreClient = func(server, token string) store.Store { panic("internal/client not available yet") }
