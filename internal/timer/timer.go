// Package timer runs TimeTriggers: each trigger's cron schedule calls its
// function through the router, as Fission's timer does (fission.md §3f):
// method spec.method (GET when empty) on
// <router>/fission-function/<namespace>/<function><subpath>, with the
// header X-Fission-Timer-Name.
//
// Schedules use robfig/cron with an optional seconds field, so the
// 5-field specs Fission users write, 6-field specs with seconds and
// descriptors (@hourly, @every 1s) all work.
//
// A call is retried only when it did not reach the router (a transport
// error), a bounded number of times with a delay doubling from 500 ms;
// an HTTP error answer is logged and dropped, as in Fission.
package timer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/mirror"
	"isotope.dev/isotope/internal/store"
)

// HeaderTimerName carries the name of the trigger that fired.
const HeaderTimerName = "X-Fission-Timer-Name"

// parser accepts 5 fields, 6 fields (leading seconds) and descriptors.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses a cron spec the way the timer will run it.
func Parse(spec string) (cron.Schedule, error) {
	s, err := parser.Parse(strings.TrimSpace(spec))
	if err != nil {
		return nil, fmt.Errorf("cron %q: %v", spec, err)
	}
	return s, nil
}

// NextTimes returns the next n times spec fires after from (for
// `isotope timer showschedule`).
func NextTimes(spec string, n int, from time.Time) ([]time.Time, error) {
	s, err := Parse(spec)
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, 0, n)
	t := from
	for range n {
		t = s.Next(t)
		if t.IsZero() {
			break // a spec that never fires again (e.g. Feb 30)
		}
		out = append(out, t)
	}
	return out, nil
}

// Config configures a Timer.
type Config struct {
	// Store is where TimeTriggers are read from.
	Store store.Store
	// RouterURL is the router's base URL, e.g. http://127.0.0.1:8888.
	RouterURL string
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
	// HTTPClient makes the calls; nil uses a client without a timeout
	// (each call is bounded by RequestTimeout).
	HTTPClient *http.Client
	// RequestTimeout bounds one call including its retries; default 60
	// minutes, Fission's.
	RequestTimeout time.Duration
	// MaxRetries is how many times a call that failed in transport is
	// retried; default 5 (500 ms, 1 s, 2 s, 4 s, 8 s).
	MaxRetries int
	// RetryDelay is the first retry's delay; default 500 ms.
	RetryDelay time.Duration
}

// Timer schedules the calls of every TimeTrigger in the store.
type Timer struct {
	cfg  Config
	log  *slog.Logger
	cron *cron.Cron

	mu      sync.Mutex
	entries map[string]*entry // "namespace/name"
}

// entry is one scheduled trigger. Its context is cancelled when the
// trigger is changed or deleted, which also stops its calls in flight.
type entry struct {
	id      cron.EntryID
	rv      string
	cancel  context.CancelFunc
	trigger *v1.TimeTrigger
}

// New returns a Timer; Run starts it.
func New(cfg Config) *Timer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 60 * time.Minute
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 500 * time.Millisecond
	}
	cfg.RouterURL = strings.TrimRight(cfg.RouterURL, "/")
	return &Timer{
		cfg:     cfg,
		log:     cfg.Logger,
		cron:    cron.New(cron.WithParser(parser)),
		entries: map[string]*entry{},
	}
}

// Run watches TimeTriggers and keeps the schedule in step with them
// until ctx ends; then it stops the schedule and cancels calls in
// flight.
func (t *Timer) Run(ctx context.Context) error {
	if t.cfg.Store == nil {
		return errors.New("timer: Config.Store is nil")
	}
	if t.cfg.RouterURL == "" {
		return errors.New("timer: Config.RouterURL is empty")
	}
	m := mirror.New(t.cfg.Store, v1.KindTimeTrigger, store.ListOptions{}, t.log)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()

	t.cron.Start()
	defer func() {
		<-t.cron.Stop().Done()
		t.mu.Lock()
		for k, e := range t.entries {
			e.cancel()
			delete(t.entries, k)
		}
		t.mu.Unlock()
		<-done
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.Changed():
			t.reconcile(ctx, m.Snapshot())
		}
	}
}

// Scheduled returns the keys ("namespace/name") of the triggers
// currently scheduled.
func (t *Timer) Scheduled() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.entries))
	for k := range t.entries {
		out = append(out, k)
	}
	return out
}

// reconcile makes the cron entries match objs: new triggers are added,
// changed ones (another resourceVersion) replaced, gone ones removed.
func (t *Timer) reconcile(ctx context.Context, objs []v1.Object) {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := map[string]*v1.TimeTrigger{}
	for _, o := range objs {
		if tt, ok := o.(*v1.TimeTrigger); ok {
			want[tt.Namespace+"/"+tt.Name] = tt
		}
	}
	for k, e := range t.entries {
		if tt, ok := want[k]; !ok || tt.ResourceVersion != e.rv {
			t.cron.Remove(e.id)
			e.cancel()
			delete(t.entries, k)
			t.log.Info("timer unscheduled", "trigger", k)
		}
	}
	for k, tt := range want {
		if _, ok := t.entries[k]; ok {
			continue
		}
		if err := t.schedule(ctx, k, tt); err != nil {
			t.log.Warn("timer not scheduled", "trigger", k, "err", err)
		}
	}
}

// schedule adds one trigger; t.mu is held.
func (t *Timer) schedule(ctx context.Context, k string, tt *v1.TimeTrigger) error {
	ref := tt.Spec.FunctionReference
	if ref.Type != "" && ref.Type != v1.FunctionReferenceTypeFunctionName {
		return fmt.Errorf("spec.functionref.type %q: a timer calls one function by name", ref.Type)
	}
	if ref.Name == "" {
		return errors.New("spec.functionref.name is empty")
	}
	sched, err := Parse(tt.Spec.Cron)
	if err != nil {
		return fmt.Errorf("spec.cron: %v", err)
	}
	ectx, cancel := context.WithCancel(ctx)
	e := &entry{rv: tt.ResourceVersion, cancel: cancel, trigger: tt}
	e.id = t.cron.Schedule(sched, cron.FuncJob(func() { t.fire(ectx, tt) }))
	t.entries[k] = e
	t.log.Info("timer scheduled", "trigger", k, "cron", tt.Spec.Cron, "function", ref.Name)
	return nil
}

// URL is where a trigger's calls go.
func (t *Timer) URL(tt *v1.TimeTrigger) string {
	sub := tt.Spec.Subpath
	if sub != "" && !strings.HasPrefix(sub, "/") {
		sub = "/" + sub
	}
	return t.cfg.RouterURL + "/fission-function/" + tt.Namespace + "/" + tt.Spec.FunctionReference.Name + sub
}

// fire makes one call, retrying transport errors only.
func (t *Timer) fire(ctx context.Context, tt *v1.TimeTrigger) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.RequestTimeout)
	defer cancel()
	method := tt.Spec.Method
	if method == "" {
		method = http.MethodGet
	}
	url := t.URL(tt)
	log := t.log.With("trigger", tt.Namespace+"/"+tt.Name, "url", url)
	delay := t.cfg.RetryDelay
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			log.Error("timer request", "err", err)
			return
		}
		req.Header.Set(HeaderTimerName, tt.Name)
		resp, err := t.cfg.HTTPClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode >= 400 {
				log.Warn("timer call answered with an error", "status", resp.StatusCode)
			} else {
				log.Debug("timer fired", "status", resp.StatusCode)
			}
			return
		}
		if ctx.Err() != nil || attempt >= t.cfg.MaxRetries {
			log.Warn("timer call failed", "err", err, "attempts", attempt+1)
			return
		}
		log.Debug("timer call failed; retrying", "err", err, "delay", delay)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		delay *= 2
	}
}
