package router

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor"
)

// handlerExec leases one in-process handler: the router's own cost.
type handlerExec struct{ h http.Handler }

func (e handlerExec) Acquire(context.Context, *v1.Function) (executor.Lease, error) {
	return handlerLease{e.h}, nil
}

type handlerLease struct{ http.Handler }

func (handlerLease) Release(error)   {}
func (handlerLease) ColdStart() bool { return false }

// BenchmarkServeHTTP measures routing one request (match, rewrite,
// metrics) to an in-process handler, with 100 triggers in the table.
func BenchmarkServeHTTP(b *testing.B) {
	var fns []*v1.Function
	var trs []*v1.HTTPTrigger
	for i := range 100 {
		fn := function("default", fmt.Sprintf("fn%d", i))
		fns = append(fns, fn)
		trs = append(trs, trigger("default", fmt.Sprintf("t%d", i), v1.HTTPTriggerSpec{
			RelativeURL: fmt.Sprintf("/fn%d", i), Methods: []string{"GET"}, FunctionReference: ref(fn.Name)}))
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi\n")) })
	rt := New(Config{Executor: handlerExec{hello}})
	rt.table.Store(buildTable(trs, fns))
	for _, rr := range []bool{false, true} {
		b.Run(fmt.Sprintf("roundrobin=%v", rr), func(b *testing.B) {
			reqs := make([]*http.Request, 100)
			for i := range reqs {
				reqs[i] = httptest.NewRequest("GET", fmt.Sprintf("/fn%d", i), nil)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := reqs[0]
				if rr {
					r = reqs[i%100]
				}
				i++
				r.Header = http.Header{}
				rt.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
