package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// The dashboard role's command: a typo of the command or of a flag is
// refused with a suggestion or the flag named, stray arguments are
// refused, and bad flag values are named before it reaches a cluster.
func TestDashboardRoleCommandInput(t *testing.T) {
	if _, err := execute("dashbord"); err == nil || !strings.Contains(err.Error(), `did you mean "dashboard"`) {
		t.Errorf("typo: %v, want a suggestion of dashboard", err)
	}
	if _, err := execute("dashboard", "--tokn", "x"); err == nil || !strings.Contains(err.Error(), "--tokn") {
		t.Errorf("flag typo: %v, want the unknown flag named", err)
	}
	if _, err := execute("dashboard", "extra"); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("stray argument: %v, want it refused", err)
	}
	if _, err := execute("dashboard", "--api-host", "http://dash.example:80"); err == nil || !strings.Contains(err.Error(), "--api-host") {
		t.Errorf("bad --api-host: %v, want the flag named", err)
	}
	if _, err := execute("--router", "", "dashboard"); err == nil || !strings.Contains(err.Error(), "--router") {
		t.Errorf("no router: %v, want --router named", err)
	}
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := execute("dashboard", "--kubeconfig", missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing kubeconfig: %v, want the file named", err)
	}
	out, err := execute("dashboard", "--help")
	if err != nil || !strings.Contains(out, "ISOTOPE_DASHBOARD_TOKEN") || !strings.Contains(out, "--router") {
		t.Errorf("help: %v\n%s", err, out)
	}
}
