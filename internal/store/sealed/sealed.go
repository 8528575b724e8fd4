// Package sealed is a store.Store decorator that keeps the values of
// Secrets encrypted at rest: each value is sealed with AES-256-GCM under
// a key kept in a file of the data dir, bound (as additional data) to
// the secret's namespace, name and key, so a sealed value copied to
// another place does not open. Every other kind passes through
// unchanged. Readers of the decorated store see plaintext; the file and
// the inner store only ever hold ciphertext.
package sealed

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// KeyFileName is the key file inside the data dir.
const KeyFileName = "secrets.key"

// prefix marks a sealed value; its version names the scheme.
var prefix = []byte("isotope-sealed-v1:")

// Store seals Secret values on their way into the inner store and opens
// them on their way out.
type Store struct {
	store.Store
	aead    cipher.AEAD
	keyPath string
}

// New decorates inner with the 32-byte key read from keyPath (named in
// errors).
func New(inner store.Store, key []byte, keyPath string) (*Store, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secret key file %s: want 32 bytes, have %d", keyPath, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Store{Store: inner, aead: aead, keyPath: keyPath}, nil
}

// LoadOrCreateKey reads the key file at path (64 hex digits), creating
// it with a new random key, mode 0600, when it does not exist. A key
// file others can read, or one that does not hold a key, is refused with
// an error naming it.
func LoadOrCreateKey(path string) (key []byte, created bool, err error) {
	key, err = loadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	// O_EXCL: two servers racing on one data dir never write two keys.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("create the secret key file %s: %w", path, err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("write the secret key file %s: %w", path, err)
	}
	return key, true, nil
}

func loadKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret key file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret key file %s is accessible to other users (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("secret key file %s does not hold a key (64 hex digits); restore the file the secrets were sealed with", path)
	}
	return key, nil
}

func aad(ns, name, key string) []byte { return []byte(ns + "/" + name + "/" + key) }

// seal returns a copy of s with every value sealed.
func (st *Store) seal(s *v1.Secret) *v1.Secret {
	out := s.DeepCopy()
	ns := out.Namespace
	if ns == "" {
		ns = v1.DefaultNamespace
	}
	for k, v := range out.Data {
		nonce := make([]byte, st.aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		sealed := append(append(bytes.Clone(prefix), nonce...), st.aead.Seal(nil, nonce, v, aad(ns, out.Name, k))...)
		out.Data[k] = sealed
	}
	return out
}

// open opens every value of s in place.
func (st *Store) open(s *v1.Secret) error {
	n := st.aead.NonceSize()
	for k, v := range s.Data {
		if !bytes.HasPrefix(v, prefix) || len(v) < len(prefix)+n {
			return store.Errorf(store.ReasonInternal, "secret %s/%s: the value of key %q is not sealed (written around this server?)", s.Namespace, s.Name, k)
		}
		body := v[len(prefix):]
		plain, err := st.aead.Open(nil, body[:n], body[n:], aad(s.Namespace, s.Name, k))
		if err != nil {
			return store.Errorf(store.ReasonInternal, "secret %s/%s: key %q does not open with the key in %s: is it the key file the secret was sealed with?", s.Namespace, s.Name, k, st.keyPath)
		}
		s.Data[k] = plain
	}
	return nil
}

func (st *Store) openObj(obj v1.Object, err error) (v1.Object, error) {
	if err != nil {
		return obj, err
	}
	if s, ok := obj.(*v1.Secret); ok {
		if err := st.open(s); err != nil {
			return nil, err
		}
	}
	return obj, nil
}

// checkPlain validates a secret before sealing, so that errors speak of
// the values as given (the inner store sees only ciphertext).
func checkPlain(s *v1.Secret) error {
	c := s.DeepCopy()
	v1.Default(c)
	if errs := v1.Validate(c); len(errs) > 0 {
		return store.InvalidError(v1.KindSecret, c.Name, errs)
	}
	return nil
}

// Get implements store.Store.
func (st *Store) Get(ctx context.Context, kind, ns, name string) (v1.Object, error) {
	return st.openObj(st.Store.Get(ctx, kind, ns, name))
}

// List implements store.Store.
func (st *Store) List(ctx context.Context, kind string, opts store.ListOptions) ([]v1.Object, string, error) {
	objs, rv, err := st.Store.List(ctx, kind, opts)
	if err != nil {
		return nil, "", err
	}
	for _, o := range objs {
		if _, err := st.openObj(o, nil); err != nil {
			return nil, "", err
		}
	}
	return objs, rv, nil
}

// Create implements store.Store.
func (st *Store) Create(ctx context.Context, obj v1.Object) (v1.Object, error) {
	if s, ok := obj.(*v1.Secret); ok {
		if err := checkPlain(s); err != nil {
			return nil, err
		}
		obj = st.seal(s)
	}
	return st.openObj(st.Store.Create(ctx, obj))
}

// Update implements store.Store. A sealed value is never equal to the
// stored one (fresh nonce), so every update of a secret writes.
func (st *Store) Update(ctx context.Context, obj v1.Object) (v1.Object, error) {
	if s, ok := obj.(*v1.Secret); ok {
		if err := checkPlain(s); err != nil {
			return nil, err
		}
		obj = st.seal(s)
	}
	return st.openObj(st.Store.Update(ctx, obj))
}

// Watch implements store.Store: secrets' events carry opened values; an
// event whose values do not open carries none.
func (st *Store) Watch(ctx context.Context, kind string, opts store.WatchOptions) (store.Watcher, error) {
	w, err := st.Store.Watch(ctx, kind, opts)
	if err != nil || kind != v1.KindSecret {
		return w, err
	}
	out := &watcher{inner: w, ch: make(chan store.Event)}
	go func() {
		defer close(out.ch)
		for ev := range w.ResultChan() {
			if s, ok := ev.Object.(*v1.Secret); ok {
				if st.open(s) != nil {
					s.Data = nil
				}
			}
			select {
			case out.ch <- ev:
			case <-ctx.Done():
				w.Stop()
				for range w.ResultChan() {
				}
				return
			}
		}
	}()
	return out, nil
}

type watcher struct {
	inner store.Watcher
	ch    chan store.Event
}

func (w *watcher) ResultChan() <-chan store.Event { return w.ch }

// Stop stops the inner watch; the relay drains it and closes.
func (w *watcher) Stop() {
	w.inner.Stop()
	go func() {
		for range w.ch {
		}
	}()
}
