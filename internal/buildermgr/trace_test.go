package buildermgr_test

import (
	"context"
	"testing"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/testing/otlptest"
	"isotope.dev/isotope/internal/tracing"
)

// TestBuildTrace: with tracing on, one build is one trace, exported to a
// real OTLP receiver: build → build.fetch → fetcher.fetch, build.run,
// build.upload → fetcher.upload → storagesvc.upload (the trace carried
// over HTTP into the storage service).
func TestBuildTrace(t *testing.T) {
	rcv := otlptest.NewHTTP(t)
	rcv.Setenv(t)
	shutdown, err := tracing.Setup(context.Background(), "isotope-buildermgr")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	f := newFixture(t, "")
	create(t, f.st, testEnv(t, "go"))
	create(t, f.st, pkgWithSource("traced", "go", sourceZip(t, map[string]string{"hello.go": "package main"})))
	if p := waitStatus(t, f.st, "traced"); p.Status.BuildStatus != v1.BuildStatusSucceeded {
		t.Fatalf("build %s:\n%s", p.Status.BuildStatus, p.Status.BuildLog)
	}
	spans := rcv.WaitFor(t, 20*time.Second, "the build's spans", func(s []otlptest.Span) bool {
		return otlptest.Has(s, "build") && otlptest.Has(s, "storagesvc.upload")
	})
	build := otlptest.Named(spans, "build")[0]
	if build.ParentID != "" || build.Attrs["isotope.package.name"] != "traced" || build.Attrs["isotope.build.status"] != "succeeded" {
		t.Fatalf("build span = %+v", build)
	}
	for child, parent := range map[string]string{
		"build.fetch": "build", "build.run": "build", "build.upload": "build",
		"fetcher.fetch": "build.fetch", "fetcher.upload": "build.upload", "storagesvc.upload": "fetcher.upload",
	} {
		c := otlptest.Named(spans, child)
		if len(c) != 1 {
			t.Fatalf("%d %s spans:\n%s", len(c), child, otlptest.Dump(spans))
		}
		if p, ok := otlptest.Parent(spans, c[0]); !ok || p.Name != parent || c[0].TraceID != build.TraceID {
			t.Errorf("%s is not under %s in the build's trace:\n%s", child, parent, otlptest.Dump(spans))
		}
	}
}
