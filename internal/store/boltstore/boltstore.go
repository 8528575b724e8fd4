// Package boltstore is the embedded implementation of store.Store, on a
// single bbolt file in the data dir.
//
// Layout: one bucket per kind holding JSON objects under the key
// "namespace/name"; a meta bucket with the store-wide resourceVersion
// counter; and an event log bucket holding the last Options.EventLogSize
// changes keyed by their resourceVersion (8 bytes, big-endian), so that a
// watch can resume from any recent resourceVersion, also after a restart.
//
// Every write is one bbolt transaction that stores the object, bumps the
// counter, appends the event and trims the log, so a crash (kill -9)
// leaves either all of a write or none of it. Writes are serialised by a
// mutex that also covers handing the committed event to live watchers,
// which therefore see events in resourceVersion order.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

var (
	metaBucket   = []byte("_meta")
	eventsBucket = []byte("_events")
	rvKey        = []byte("resourceVersion")
)

// Options tunes a Store. The zero value is usable.
type Options struct {
	// EventLogSize is how many past changes are kept for watches that
	// resume from a resourceVersion (default 10000). A watch from an
	// older version fails with store.ReasonExpired.
	EventLogSize int
	// WatchBuffer is how many live events a watcher may fall behind
	// before it is closed (default 1024); see Store.Watch.
	WatchBuffer int
	// LockTimeout bounds the wait for the file lock held by another
	// process using the same file (default 5s).
	LockTimeout time.Duration
}

func (o *Options) setDefaults() {
	if o.EventLogSize <= 0 {
		o.EventLogSize = 10000
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = 1024
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 5 * time.Second
	}
}

// Store is a store.Store on a bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	opts Options

	// mu serialises writes and their delivery to watchers, and guards
	// closed.
	mu     sync.Mutex
	closed bool
	bc     broadcaster
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store file at path.
func Open(path string, opts Options) (*Store, error) {
	opts.setDefaults()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: file is locked by another process (is another isotope server using this data dir?)", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{metaBucket, eventsBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		for _, k := range v1.Kinds() {
			if _, err := tx.CreateBucketIfNotExists([]byte(k.Kind)); err != nil {
				return err
			}
		}
		// Apply a smaller EventLogSize than the file was written with.
		return trimEvents(tx.Bucket(eventsBucket), readRV(tx), opts.EventLogSize)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db, opts: opts, bc: broadcaster{subs: map[*watcher]struct{}{}}}, nil
}

// Close stops every watcher (their channels close after the events they
// already hold) and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.bc.closeAll()
	return s.db.Close()
}

var errClosed = errors.New("store is closed")

// kindInfo resolves a kind name (or alias) to its KindInfo.
func kindInfo(kind string) (v1.KindInfo, error) {
	ki, err := v1.LookupKind(kind)
	if err != nil {
		return ki, &store.Error{Reason: store.ReasonBadRequest, Message: err.Error()}
	}
	return ki, nil
}

func key(namespace, name string) []byte { return []byte(namespace + "/" + name) }

func rvBytes(rv uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, rv)
	return b
}

func readRV(tx *bolt.Tx) uint64 {
	v := tx.Bucket(metaBucket).Get(rvKey)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// parseRV parses a resourceVersion; "" is 0.
func parseRV(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, &store.Error{Reason: store.ReasonBadRequest, Message: fmt.Sprintf("invalid resourceVersion %q: must be a decimal number", s)}
	}
	return n, nil
}

// decode reads a stored object of kind ki into a fresh typed object.
func decode(ki v1.KindInfo, data []byte) (v1.Object, error) {
	obj := ki.New()
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", ki.Kind, err)
	}
	v1.SetTypeMeta(obj)
	return obj, nil
}

func encode(obj v1.Object) ([]byte, error) {
	v1.SetTypeMeta(obj)
	return json.Marshal(obj)
}

func notFound(ki v1.KindInfo, namespace, name string) error {
	return store.Errorf(store.ReasonNotFound, "%s %q not found in namespace %q", ki.Kind, name, namespace)
}

// checkKind returns the KindInfo of obj, which must be a known kind.
func checkKind(obj v1.Object) (v1.KindInfo, error) {
	if obj == nil || reflect.ValueOf(obj).IsNil() {
		return v1.KindInfo{}, store.Errorf(store.ReasonBadRequest, "nil object")
	}
	k := v1.KindOf(obj)
	if k == "" {
		return v1.KindInfo{}, store.Errorf(store.ReasonBadRequest, "unsupported object type %T", obj)
	}
	return kindInfo(k)
}

// prepare defaults and validates obj (a copy owned by the store).
func prepare(ki v1.KindInfo, obj v1.Object) error {
	v1.Default(obj)
	var errs field.ErrorList
	// The key is namespace/name: guard it even before validation does.
	if obj.GetName() == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), "name is required"))
	} else if strings.Contains(obj.GetName(), "/") {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), obj.GetName(), "may not contain '/'"))
	}
	if strings.Contains(obj.GetNamespace(), "/") {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "namespace"), obj.GetNamespace(), "may not contain '/'"))
	}
	if len(errs) == 0 {
		errs = v1.Validate(obj)
	}
	if len(errs) > 0 {
		return store.InvalidError(ki.Kind, obj.GetName(), errs)
	}
	return nil
}

// checkRoute refuses an HTTPTrigger that would answer the same requests
// as another one (v1.RouteConflict), in any namespace: the router has one
// table for all of them. It runs inside the write's transaction, so two
// colliding triggers written at once cannot both pass. Other kinds pass.
func checkRoute(b *bolt.Bucket, obj v1.Object) error {
	tr, ok := obj.(*v1.HTTPTrigger)
	if !ok {
		return nil
	}
	self := string(key(tr.Namespace, tr.Name))
	return b.ForEach(func(k, v []byte) error {
		if string(k) == self {
			return nil
		}
		var other v1.HTTPTrigger
		if err := json.Unmarshal(v, &other); err != nil {
			return fmt.Errorf("decode stored HTTPTrigger %s: %w", k, err)
		}
		if what := v1.RouteConflict(&tr.Spec, &other.Spec); what != "" {
			return store.RouteTaken(tr, &other, what)
		}
		return nil
	})
}

// change is one committed write, handed to watchers after commit.
type change struct {
	typ  store.EventType
	kind v1.KindInfo
	data []byte // the object as stored (for Deleted: last state, new rv)
}

// logEntry is the event log's value format.
type logEntry struct {
	Type   store.EventType `json:"type"`
	Kind   string          `json:"kind"`
	Object json.RawMessage `json:"object"`
}

// write runs fn in one bbolt transaction. fn gets the kind's bucket and
// the resourceVersion the write will have, and returns the change it made,
// or nil for a no-op (then nothing is committed). On success the change
// is appended to the event log in the same transaction and, after the
// commit, delivered to watchers.
func (s *Store) write(ctx context.Context, ki v1.KindInfo, fn func(b *bolt.Bucket, rv uint64) (*change, error)) (*change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	var ch *change
	err := s.db.Update(func(tx *bolt.Tx) error {
		rv := readRV(tx) + 1
		var err error
		ch, err = fn(tx.Bucket([]byte(ki.Kind)), rv)
		if err != nil || ch == nil {
			return err
		}
		if err := tx.Bucket(metaBucket).Put(rvKey, rvBytes(rv)); err != nil {
			return err
		}
		entry, err := json.Marshal(logEntry{Type: ch.typ, Kind: ki.Kind, Object: ch.data})
		if err != nil {
			return err
		}
		events := tx.Bucket(eventsBucket)
		if err := events.Put(rvBytes(rv), entry); err != nil {
			return err
		}
		return trimEvents(events, rv, s.opts.EventLogSize)
	})
	if err != nil {
		return nil, err
	}
	if ch != nil {
		s.bc.publish(ch)
	}
	return ch, nil
}

// trimEvents drops log entries so that at most size remain: those with
// resourceVersion <= current-size.
func trimEvents(b *bolt.Bucket, current uint64, size int) error {
	if current <= uint64(size) {
		return nil
	}
	limit := current - uint64(size)
	for {
		k, _ := b.Cursor().First()
		if k == nil || binary.BigEndian.Uint64(k) > limit {
			return nil
		}
		if err := b.Delete(k); err != nil {
			return err
		}
	}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, kind, namespace, name string) (v1.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ki, err := kindInfo(kind)
	if err != nil {
		return nil, err
	}
	if namespace == "" {
		namespace = v1.DefaultNamespace
	}
	var obj v1.Object
	err = s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket([]byte(ki.Kind)).Get(key(namespace, name))
		if data == nil {
			return notFound(ki, namespace, name)
		}
		var err error
		obj, err = decode(ki, data)
		return err
	})
	return obj, err
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, kind string, opts store.ListOptions) ([]v1.Object, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	ki, err := kindInfo(kind)
	if err != nil {
		return nil, "", err
	}
	var (
		out []v1.Object
		rv  uint64
	)
	err = s.db.View(func(tx *bolt.Tx) error {
		rv = readRV(tx)
		c := tx.Bucket([]byte(ki.Kind)).Cursor()
		var prefix []byte
		if opts.Namespace != "" {
			prefix = []byte(opts.Namespace + "/")
		}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			obj, err := decode(ki, v)
			if err != nil {
				return err
			}
			if opts.Matches(obj) {
				out = append(out, obj)
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].GetNamespace() != out[j].GetNamespace() {
			return out[i].GetNamespace() < out[j].GetNamespace()
		}
		return out[i].GetName() < out[j].GetName()
	})
	return out, strconv.FormatUint(rv, 10), nil
}

// Create implements store.Store. A status given on create is kept (the
// CLI creates packages as pending); any resourceVersion or uid given is
// ignored.
func (s *Store) Create(ctx context.Context, in v1.Object) (v1.Object, error) {
	ki, err := checkKind(in)
	if err != nil {
		return nil, err
	}
	obj := in.DeepCopyObject().(v1.Object)
	obj.SetResourceVersion("")
	if err := prepare(ki, obj); err != nil {
		return nil, err
	}
	ch, err := s.write(ctx, ki, func(b *bolt.Bucket, rv uint64) (*change, error) {
		k := key(obj.GetNamespace(), obj.GetName())
		if b.Get(k) != nil {
			return nil, store.Errorf(store.ReasonAlreadyExists, "%s %q already exists in namespace %q", ki.Kind, obj.GetName(), obj.GetNamespace())
		}
		if err := checkRoute(b, obj); err != nil {
			return nil, err
		}
		obj.SetUID(types.UID(uuid.NewString()))
		obj.SetCreationTimestamp(metav1.NewTime(time.Now().UTC()))
		obj.SetGeneration(1)
		obj.SetResourceVersion(strconv.FormatUint(rv, 10))
		obj.SetDeletionTimestamp(nil)
		data, err := encode(obj)
		if err != nil {
			return nil, err
		}
		return &change{typ: store.Added, kind: ki, data: data}, b.Put(k, data)
	})
	if err != nil {
		return nil, err
	}
	return decode(ki, ch.data)
}

// checkRV enforces the optimistic-concurrency precondition.
func checkRV(ki v1.KindInfo, namespace, name, given string, stored v1.Object) error {
	if given == "" || given == stored.GetResourceVersion() {
		return nil
	}
	return store.Errorf(store.ReasonConflict,
		"operation cannot be fulfilled on %s %q in namespace %q: the object has been modified (resourceVersion %s given, %s stored); read the latest version and try again",
		ki.Kind, name, namespace, given, stored.GetResourceVersion())
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, in v1.Object) (v1.Object, error) {
	return s.update(ctx, in, false)
}

// UpdateStatus implements store.Store. Kinds without a status
// (v1.KindInfo.HasStatus false) answer ReasonMethodNotAllowed.
func (s *Store) UpdateStatus(ctx context.Context, in v1.Object) (v1.Object, error) {
	return s.update(ctx, in, true)
}

func (s *Store) update(ctx context.Context, in v1.Object, status bool) (v1.Object, error) {
	ki, err := checkKind(in)
	if err != nil {
		return nil, err
	}
	if status && !ki.HasStatus {
		return nil, store.Errorf(store.ReasonMethodNotAllowed, "%s has no status", ki.Kind)
	}
	in = in.DeepCopyObject().(v1.Object)
	if in.GetNamespace() == "" {
		in.SetNamespace(v1.DefaultNamespace)
	}
	var result []byte
	_, err = s.write(ctx, ki, func(b *bolt.Bucket, rv uint64) (*change, error) {
		k := key(in.GetNamespace(), in.GetName())
		old := b.Get(k)
		if old == nil {
			return nil, notFound(ki, in.GetNamespace(), in.GetName())
		}
		stored, err := decode(ki, old)
		if err != nil {
			return nil, err
		}
		if err := checkRV(ki, in.GetNamespace(), in.GetName(), in.GetResourceVersion(), stored); err != nil {
			return nil, err
		}
		var obj v1.Object
		if status {
			obj = stored.DeepCopyObject().(v1.Object)
			copyField(obj, in, "Status")
		} else {
			obj = in
			copySystemMeta(obj, stored)
			if ki.HasStatus {
				copyField(obj, stored, "Status")
			}
		}
		if err := prepare(ki, obj); err != nil {
			return nil, err
		}
		if !status {
			if err := checkRoute(b, obj); err != nil {
				return nil, err
			}
		}
		obj.SetResourceVersion(stored.GetResourceVersion())
		obj.SetGeneration(stored.GetGeneration())
		if !status {
			same, err := sameField(obj, stored, "Spec")
			if err != nil {
				return nil, err
			}
			if !same {
				obj.SetGeneration(stored.GetGeneration() + 1)
			}
		}
		data, err := encode(obj)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(data, old) {
			result = old
			return nil, nil // no-op: write nothing
		}
		obj.SetResourceVersion(strconv.FormatUint(rv, 10))
		if data, err = encode(obj); err != nil {
			return nil, err
		}
		result = data
		return &change{typ: store.Modified, kind: ki, data: data}, b.Put(k, data)
	})
	if err != nil {
		return nil, err
	}
	return decode(ki, result)
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, kind, namespace, name, resourceVersion string) error {
	ki, err := kindInfo(kind)
	if err != nil {
		return err
	}
	if namespace == "" {
		namespace = v1.DefaultNamespace
	}
	_, err = s.write(ctx, ki, func(b *bolt.Bucket, rv uint64) (*change, error) {
		k := key(namespace, name)
		old := b.Get(k)
		if old == nil {
			return nil, notFound(ki, namespace, name)
		}
		stored, err := decode(ki, old)
		if err != nil {
			return nil, err
		}
		if err := checkRV(ki, namespace, name, resourceVersion, stored); err != nil {
			return nil, err
		}
		stored.SetResourceVersion(strconv.FormatUint(rv, 10))
		data, err := encode(stored)
		if err != nil {
			return nil, err
		}
		return &change{typ: store.Deleted, kind: ki, data: data}, b.Delete(k)
	})
	return err
}

// copySystemMeta copies the metadata only the store sets from stored to
// obj: uid, creation time, deletion fields.
func copySystemMeta(obj, stored v1.Object) {
	obj.SetUID(stored.GetUID())
	obj.SetCreationTimestamp(stored.GetCreationTimestamp())
	obj.SetDeletionTimestamp(stored.GetDeletionTimestamp())
	obj.SetDeletionGracePeriodSeconds(stored.GetDeletionGracePeriodSeconds())
}

// copyField sets dst.<name> = src.<name> for two objects of one type.
func copyField(dst, src v1.Object, name string) {
	d := reflect.ValueOf(dst).Elem().FieldByName(name)
	sv := reflect.ValueOf(src).Elem().FieldByName(name)
	if d.IsValid() && sv.IsValid() {
		d.Set(sv)
	}
}

// sameField reports whether a.<name> and b.<name> encode to the same JSON.
func sameField(a, b v1.Object, name string) (bool, error) {
	av := reflect.ValueOf(a).Elem().FieldByName(name)
	bv := reflect.ValueOf(b).Elem().FieldByName(name)
	if !av.IsValid() || !bv.IsValid() {
		return true, nil
	}
	aj, err := json.Marshal(av.Interface())
	if err != nil {
		return false, err
	}
	bj, err := json.Marshal(bv.Interface())
	if err != nil {
		return false, err
	}
	return bytes.Equal(aj, bj), nil
}
