package boltstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/storetest"
)

// crashChildEnv, when set to a file path, makes the test binary act as
// the writer process of TestKill9: it writes to that store in a loop,
// printing "ok <resourceVersion>" after each acknowledged write, until
// it is killed.
const crashChildEnv = "ISOTOPE_BOLTSTORE_CRASH_CHILD"

// crashLogSize keeps every event of the crash test so that replaying the
// whole log can be checked against the stored state.
const crashLogSize = 1 << 20

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func crashChild(path string) {
	s, err := Open(path, Options{EventLogSize: crashLogSize})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	ack := func(obj v1.Object, err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Fprintf(out, "ok %s\n", obj.GetResourceVersion())
		out.Flush()
	}
	// Continue where a killed predecessor stopped: names from here on are new.
	_, rv, err := s.List(ctx, v1.KindFunction, store.ListOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	start, _ := strconv.Atoi(rv)
	for i := start; ; i++ {
		ns := fmt.Sprintf("ns%d", i%3)
		for j, sample := range storetest.Samples(ns) {
			name := fmt.Sprintf("%s-%d", sample.GetName(), i)
			sample.SetName(name)
			// Large enough values that a torn write would show.
			sample.SetAnnotations(map[string]string{"payload": strings.Repeat("x", 2000+i%500)})
			c, err := s.Create(ctx, sample)
			ack(c, err)
			storetest.ChangeSpec(c, i+j)
			c, err = s.Update(ctx, c)
			ack(c, err)
			if p, ok := c.(*v1.Package); ok {
				p.Status.BuildStatus = v1.BuildStatusSucceeded
				p.Status.BuildLog = strings.Repeat("log ", 100)
				c, err = s.UpdateStatus(ctx, p)
				ack(c, err)
			}
			if i%2 == 1 {
				kind := v1.KindOf(c)
				if err := s.Delete(ctx, kind, ns, name, c.GetResourceVersion()); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(4)
				}
				rv, _ := strconv.ParseUint(c.GetResourceVersion(), 10, 64)
				fmt.Fprintf(out, "ok %d\n", rv+1)
				out.Flush()
			}
		}
	}
}

func TestKill9LeavesAConsistentStore(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	path := filepath.Join(t.TempDir(), "isotope.db")
	for round := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it at a different point each round, mid-stream.
		sc := bufio.NewScanner(stdout)
		var acked uint64
		for n := 0; n < 120+131*round && sc.Scan(); n++ {
			f := strings.Fields(sc.Text())
			if len(f) == 2 && f[0] == "ok" {
				acked, _ = strconv.ParseUint(f[1], 10, 64)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if acked == 0 {
			t.Fatalf("round %d: the writer acknowledged nothing", round)
		}
		checkConsistent(t, path, acked)
	}
}

// checkConsistent reopens the store and checks that every object is
// complete and valid, that nothing acknowledged was lost, and that
// replaying the whole event log reproduces exactly the stored state.
func checkConsistent(t *testing.T, path string, acked uint64) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(path, Options{EventLogSize: crashLogSize})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	var current uint64
	state := map[string]string{}
	for _, k := range v1.Kinds() {
		objs, rv, err := s.List(ctx, k.Kind, store.ListOptions{})
		if err != nil {
			t.Fatalf("list %s after kill -9: %v", k.Kind, err)
		}
		current = storetest.RV(t, rv)
		for _, o := range objs {
			if errs := v1.Validate(o); len(errs) > 0 {
				t.Errorf("%s %s invalid after kill -9: %v", k.Kind, o.GetName(), errs)
			}
			if o.GetUID() == "" || storetest.RV(t, o.GetResourceVersion()) > current {
				t.Errorf("%s %s: uid %q rv %s (store at %d)", k.Kind, o.GetName(), o.GetUID(), o.GetResourceVersion(), current)
			}
			if len(o.GetAnnotations()["payload"]) < 2000 {
				t.Errorf("%s %s: torn payload", k.Kind, o.GetName())
			}
			state[k.Kind+"/"+o.GetNamespace()+"/"+o.GetName()] = storetest.JSON(o)
		}
	}
	if current < acked {
		t.Fatalf("store at resourceVersion %d, but the writer was told %d succeeded", current, acked)
	}
	// Replay the full log and rebuild the state.
	replayed := map[string]string{}
	for _, k := range v1.Kinds() {
		var last uint64
		w, err := s.Watch(ctx, k.Kind, store.WatchOptions{ResourceVersion: "0"})
		if err != nil {
			t.Fatal(err)
		}
		// A marker object written now ends the replay.
		marker := fmt.Sprintf("marker-%d", current)
		sample := storetest.Sample(k.Kind, "zz-end", marker)
		sample.SetAnnotations(map[string]string{"payload": strings.Repeat("m", 2000)})
		if _, err := s.Create(ctx, sample); err != nil {
			t.Fatal(err)
		}
		for {
			ev := storetest.NextEvent(t, w)
			if ev.Object.GetName() == marker {
				break
			}
			rv := storetest.RV(t, ev.Object.GetResourceVersion())
			if rv <= last {
				t.Fatalf("%s log replay: rv %d after %d", k.Kind, rv, last)
			}
			last = rv
			key := k.Kind + "/" + ev.Object.GetNamespace() + "/" + ev.Object.GetName()
			switch ev.Type {
			case store.Added, store.Modified:
				replayed[key] = storetest.JSON(ev.Object)
			case store.Deleted:
				delete(replayed, key)
			}
		}
		w.Stop()
		if err := s.Delete(ctx, k.Kind, "zz-end", marker, ""); err != nil {
			t.Fatal(err)
		}
	}
	if len(replayed) != len(state) {
		t.Errorf("replaying the log gives %d objects, the store holds %d", len(replayed), len(state))
	}
	for k, v := range state {
		if replayed[k] != v {
			t.Errorf("%s: log replay\n%s\nstored\n%s", k, replayed[k], v)
		}
	}
}
