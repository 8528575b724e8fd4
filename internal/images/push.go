package images

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PushOptions configure Push.
type PushOptions struct {
	// Insecure allows plain HTTP to registries that are not on
	// loopback (loopback is always allowed, as by docker).
	Insecure bool
	// Log receives one line per image; default discarded.
	Log io.Writer
}

// Pushed is one image in a registry.
type Pushed struct {
	Ref    string  // <prefix>/<name>:<tag>
	Digest v1.Hash // what the registry now serves for Ref
}

// Push uploads built images to prefix ("registry.example.com/team/isotope"):
// each as <prefix>/<name>:<tag> with the tag it was built with. Keep
// "isotope" as the prefix's last element: Isotope recognizes its built-in
// images by repositories ending in isotope/wasm-env and
// isotope/go-wasm-builder, and Push warns (in Log) about another prefix.
// Credentials come from the docker config (~/.docker/config.json and
// its helpers), as for docker push; layers the registry already has
// (the binary, shared by every image) are not sent again.
func Push(ctx context.Context, built []Built, prefix string, o PushOptions) ([]Pushed, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	var opts []name.Option
	if o.Insecure {
		opts = append(opts, name.Insecure)
	}
	if path.Base(strings.TrimSuffix(prefix, "/")) != DefaultPrefix {
		fmt.Fprintf(o.Log, "images: warning: prefix %q does not end in /%s: environments naming %s/wasm-env or %s/go-wasm-builder "+
			"are not recognized as Isotope's built-in images (go-wasm-builder pods would run Fission's /builder)\n", prefix, DefaultPrefix, prefix, prefix)
	}
	var out []Pushed
	for _, b := range built {
		tag, err := name.NewTag(b.Ref)
		if err != nil {
			return out, err
		}
		ref, err := name.NewTag(b.Image.Reference(prefix, tag.TagStr()), opts...)
		if err != nil {
			return out, fmt.Errorf("push prefix %q: %w", prefix, err)
		}
		err = remote.Write(ref, b.V1, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			return out, fmt.Errorf("push %s: %w", ref, err)
		}
		desc, err := remote.Head(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			return out, fmt.Errorf("push %s: reading it back: %w", ref, err)
		}
		if desc.Digest != b.Digest {
			return out, fmt.Errorf("push %s: the registry serves %s, not the built %s", ref, desc.Digest, b.Digest)
		}
		fmt.Fprintf(o.Log, "images: pushed %s@%s\n", ref, desc.Digest)
		out = append(out, Pushed{Ref: ref.String(), Digest: desc.Digest})
	}
	return out, nil
}
