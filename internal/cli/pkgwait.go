package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// waitForBuild follows a package's build until it ends: status changes go
// to errOut, the build log to out as it grows. It returns nil when the
// build succeeds (or the package needs none) and an exitError after
// printing the log when it fails.
//
// The log comes from the live endpoint GET /v1/buildlogs?follow=true when
// the server has one, else from status.buildlog as watch events bring it.
func waitForBuild(ctx context.Context, g *Globals, st store.Store, out, errOut io.Writer, pkg *v1.Package) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	name := pkg.Name
	fmt.Fprintf(errOut, "waiting for package '%s' to build (--no-wait returns at once)\n", name)
	live := startLiveLog(ctx, g, pkg.Namespace, name, out)

	var lastStatus v1.BuildStatus
	printed := ""
	report := func(p *v1.Package) (bool, error) {
		if s := p.Status.BuildStatus; s != lastStatus {
			fmt.Fprintf(errOut, "package '%s': %s\n", name, displayStatus(s))
			lastStatus = s
		}
		if !live.streaming() {
			logText := p.Status.BuildLog
			switch {
			case logText == printed:
			case strings.HasPrefix(logText, printed):
				io.WriteString(out, logText[len(printed):])
			default: // a new build replaced the log
				io.WriteString(out, logText)
			}
			printed = logText
		}
		switch p.Status.BuildStatus {
		case v1.BuildStatusSucceeded, v1.BuildStatusNone:
			live.finish()
			return true, nil
		case v1.BuildStatusFailed:
			live.finish()
			if printed != "" && !strings.HasSuffix(printed, "\n") {
				io.WriteString(out, "\n")
			}
			return true, &exitError{code: 1, msg: fmt.Sprintf("package '%s' build failed (log above; `isotope pkg info --name %s` shows it again)", name, name)}
		}
		return false, nil
	}
	if done, err := report(pkg); done {
		return err
	}
	rv := pkg.ResourceVersion
	for {
		w, err := st.Watch(ctx, v1.KindPackage, store.WatchOptions{ListOptions: store.ListOptions{Namespace: pkg.Namespace}, ResourceVersion: rv})
		if store.IsExpired(err) {
			w, err = st.Watch(ctx, v1.KindPackage, store.WatchOptions{ListOptions: store.ListOptions{Namespace: pkg.Namespace}})
		}
		if err != nil {
			return err
		}
		for ev := range w.ResultChan() {
			if ev.Object == nil {
				continue
			}
			if ev.Object.GetResourceVersion() != "" {
				rv = ev.Object.GetResourceVersion()
			}
			if ev.Type == store.Bookmark || ev.Object.GetName() != name {
				continue
			}
			if ev.Type == store.Deleted {
				w.Stop()
				return fmt.Errorf("package '%s' was deleted while waiting for its build", name)
			}
			p, ok := ev.Object.(*v1.Package)
			if !ok {
				continue
			}
			if done, err := report(p); done {
				w.Stop()
				return err
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return fmt.Errorf("stopped waiting; the build of package '%s' goes on: `isotope pkg info --name %s` shows how it ends", name, name)
		}
		// The server closed the watch (restart, timeout): resume from the
		// last version seen.
	}
}

// buildUnderWay reports whether a package just written has a build to
// wait for: pending, or already running. On Kubernetes the store writes
// the status after the create, and the builder manager may have taken
// the package in between: the answer then says running, and the build
// is no less the one to wait for.
func buildUnderWay(s v1.BuildStatus) bool {
	return s == v1.BuildStatusPending || s == v1.BuildStatusRunning
}

func displayStatus(s v1.BuildStatus) string {
	if s == "" {
		return "pending"
	}
	return string(s)
}

// liveLog streams GET /v1/buildlogs?follow=true to out when the server
// has that endpoint.
type liveLog struct {
	decided chan struct{} // closed once we know whether the endpoint streams
	done    chan struct{} // closed when the stream ends
	active  bool          // set before decided is closed
	cancel  context.CancelFunc
	once    sync.Once
}

// startLiveLog asks for the live log. The caller learns through
// streaming() whether the log comes from it.
func startLiveLog(ctx context.Context, g *Globals, ns, name string, out io.Writer) *liveLog {
	ctx, cancel := context.WithCancel(ctx)
	l := &liveLog{decided: make(chan struct{}), done: make(chan struct{}), cancel: cancel}
	if g.Kubeconfig != "" {
		// The live log is served by isotope server; on a cluster the
		// watch prints status.buildlog when the build ends.
		close(l.decided)
		close(l.done)
		return l
	}
	go func() {
		defer close(l.done)
		u := strings.TrimRight(g.Server, "/") + "/v1/buildlogs?" + url.Values{"namespace": {ns}, "name": {name}, "follow": {"true"}}.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			close(l.decided)
			return
		}
		if g.Token != "" {
			req.Header.Set("Authorization", "Bearer "+g.Token)
		}
		// Only the wait for the answer's headers is bounded: the stream
		// itself lasts as long as the build.
		timer := time.AfterFunc(5*time.Second, cancel)
		resp, err := http.DefaultClient.Do(req)
		stopped := timer.Stop()
		if err != nil || !stopped || resp.StatusCode != http.StatusOK {
			if err == nil {
				resp.Body.Close()
			}
			close(l.decided) // 404 or no answer: the watch prints status.buildlog
			return
		}
		defer resp.Body.Close()
		l.active = true
		close(l.decided)
		io.Copy(out, resp.Body)
	}()
	return l
}

// streaming waits until the endpoint answered and reports whether it
// streams the log.
func (l *liveLog) streaming() bool {
	<-l.decided
	return l.active
}

// finish lets a running stream drain what the server still sends after
// the build ended, for a bounded time, then stops it.
func (l *liveLog) finish() {
	l.once.Do(func() {
		if l.streaming() {
			select {
			case <-l.done:
			case <-time.After(5 * time.Second):
			}
		}
		l.cancel()
		<-l.done
	})
}
