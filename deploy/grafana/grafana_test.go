// Package grafana holds the Grafana dashboard for Isotope's Prometheus
// metrics (isotope-dashboard.json); its test keeps the dashboard and
// docs/operating.md naming the same metrics.
package grafana

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardMetricsDocumented checks that the dashboard is valid JSON
// and that every isotope_ metric its queries use is listed in
// docs/operating.md (a histogram by its base name).
func TestDashboardMetricsDocumented(t *testing.T) {
	b, err := os.ReadFile("isotope-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("isotope-dashboard.json: %v", err)
	}
	doc, err := os.ReadFile("../../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`isotope_[a-z_]+`)
	seen := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				m = strings.TrimSuffix(m, "_bucket")
				seen++
				if !strings.Contains(string(doc), "`"+m+"`") {
					t.Errorf("panel %q uses %s, which docs/operating.md does not list", p.Title, m)
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("the dashboard uses no isotope_ metric")
	}
}
