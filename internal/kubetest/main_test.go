package kubetest_test

import (
	"testing"

	"isotope.dev/isotope/internal/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }
