package server

import (
	"testing"

	"isotope.dev/isotope/internal/testing/kubetest"
)

// TestMain stops the shared kube-apiserver the dashboard role's tests
// start (kubetest.Start), if one did.
func TestMain(m *testing.M) { kubetest.Main(m) }
