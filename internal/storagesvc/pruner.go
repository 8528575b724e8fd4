package storagesvc

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Clock tells the pruner the time; tests pass a fake one.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// PrunerOptions configure a Pruner.
type PrunerOptions struct {
	// Interval between sweeps (default 1h, Fission's PRUNE_INTERVAL).
	Interval time.Duration
	// Grace: an archive younger than this is never deleted, so an upload
	// whose Package is not created yet survives (default 1h).
	Grace time.Duration
	// Clock (default the real one).
	Clock Clock
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// RefsFunc returns the ids of every archive some Package references.
type RefsFunc func(ctx context.Context) (map[string]bool, error)

// Pruner deletes archives that no Package references. Like Fission's
// archivePruner it works by set difference (no reference counting), but
// it never deletes an archive younger than the grace period and deletes
// nothing when the references cannot be listed.
type Pruner struct {
	backend Backend
	refs    RefsFunc
	opts    PrunerOptions
	log     *slog.Logger
}

// NewPruner returns a Pruner over backend; refs lists the referenced ids.
func NewPruner(backend Backend, refs RefsFunc, opts PrunerOptions) *Pruner {
	if opts.Interval <= 0 {
		opts.Interval = time.Hour
	}
	if opts.Grace <= 0 {
		opts.Grace = time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Pruner{backend: backend, refs: refs, opts: opts, log: log}
}

// Run prunes every Interval until ctx ends.
func (p *Pruner) Run(ctx context.Context) {
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := p.PruneOnce(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("archive prune failed", "err", err)
			}
		}
	}
}

// PruneOnce deletes every unreferenced archive older than the grace
// period and returns the ids it deleted.
func (p *Pruner) PruneOnce(ctx context.Context) ([]string, error) {
	// List archives before references: an archive listed here existed
	// before the references were read, so a Package created for it in
	// between is either seen or the archive is still within its grace.
	infos, err := p.backend.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list archives: %w", err)
	}
	refs, err := p.refs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list package references: %w", err)
	}
	cutoff := p.opts.Clock.Now().Add(-p.opts.Grace)
	var deleted []string
	for _, in := range infos {
		if refs[in.ID] || in.ModTime.After(cutoff) {
			continue
		}
		if err := p.backend.Delete(ctx, in.ID); err != nil {
			p.log.Warn("archive prune: delete failed", "id", in.ID, "err", err)
			continue
		}
		p.log.Info("archive pruned", "id", in.ID, "size", in.Size, "modTime", in.ModTime)
		deleted = append(deleted, in.ID)
	}
	return deleted, nil
}

// ReferencedIDs returns the archive ids (the "id" query parameter of
// spec.source.url and spec.deployment.url) the packages reference.
func ReferencedIDs(pkgs []v1.Package) map[string]bool {
	ids := map[string]bool{}
	for i := range pkgs {
		for _, a := range []v1.Archive{pkgs[i].Spec.Source, pkgs[i].Spec.Deployment} {
			if id := IDFromURL(a.URL); id != "" {
				ids[id] = true
			}
		}
	}
	return ids
}

// IDFromURL returns the archive id in a storage service download URL
// ("…/v1/archive?id=<escaped id>"), or "" when it has none.
func IDFromURL(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("id")
}

// RefsFromStore lists every Package in every namespace of st and returns
// the archive ids they reference: the RefsFunc of an embedded server or
// of a storage service talking to the API.
func RefsFromStore(st store.Store) RefsFunc {
	return func(ctx context.Context) (map[string]bool, error) {
		objs, _, err := st.List(ctx, v1.KindPackage, store.ListOptions{})
		if err != nil {
			return nil, err
		}
		pkgs := make([]v1.Package, 0, len(objs))
		for _, o := range objs {
			pkg, ok := o.(*v1.Package)
			if !ok {
				return nil, fmt.Errorf("store listed a %T as a Package", o)
			}
			pkgs = append(pkgs, *pkg)
		}
		return ReferencedIDs(pkgs), nil
	}
}
