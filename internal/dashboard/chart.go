package dashboard

import (
	"fmt"
	"html/template"
	"strings"

	"isotope.dev/isotope/internal/router"
)

// chart is a function's last hour drawn as inline SVG: requests per
// minute as bars (errors in red on top of them), p99 latency as a line on
// its own scale. Only numbers go into the markup.
type chart struct {
	SVG                template.HTML
	MaxRequests        int64
	MaxP99, TotalCount float64
}

const chartW, chartH = 600, 120

func newChart(mins []router.MinutePoint) chart {
	var c chart
	if len(mins) == 0 {
		return c
	}
	var maxLat float64
	for _, m := range mins {
		c.MaxRequests = max(c.MaxRequests, m.Requests)
		maxLat = max(maxLat, m.P99Ms)
		c.TotalCount += float64(m.Requests)
	}
	c.MaxP99 = maxLat
	bw := float64(chartW) / float64(len(mins))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="requests per minute and p99 latency, last hour">`, chartW, chartH+2)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" class="bg"/>`, chartW, chartH)
	var line []string
	for i, m := range mins {
		x := float64(i) * bw
		if m.Requests > 0 && c.MaxRequests > 0 {
			h := float64(m.Requests) / float64(c.MaxRequests) * (chartH - 4)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" class="req"><title>%s: %d requests, p50 %.2f ms, p99 %.2f ms</title></rect>`,
				x+0.5, chartH-h, bw-1, h, m.Start.Format("15:04"), m.Requests, m.P50Ms, m.P99Ms)
			if m.Errors > 0 {
				eh := float64(m.Errors) / float64(c.MaxRequests) * (chartH - 4)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" class="err"/>`, x+0.5, chartH-eh, bw-1, eh)
			}
		}
		if maxLat > 0 && m.Requests > 0 {
			line = append(line, fmt.Sprintf("%.1f,%.1f", x+bw/2, chartH-m.P99Ms/maxLat*(chartH-4)))
		}
	}
	if len(line) > 1 {
		fmt.Fprintf(&b, `<polyline points="%s" class="p99"/>`, strings.Join(line, " "))
	}
	b.WriteString(`</svg>`)
	c.SVG = template.HTML(b.String())
	return c
}
