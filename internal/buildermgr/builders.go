package buildermgr

import (
	"context"
	"io"
	"strings"

	v1 "isotope.dev/isotope/api/v1"
)

// Builders keeps builders running for environments. The embedded
// implementation supervises local processes (LocalBuilders); the
// Kubernetes one manages a Deployment and a Service per environment
// version.
type Builders interface {
	// Ensure makes sure a builder exists for env at its current
	// resourceVersion, and that builders for its older versions are gone.
	// It does not wait for the builder to be ready.
	Ensure(ctx context.Context, env *v1.Environment) error
	// Remove stops every builder of the environment namespace/name.
	Remove(ctx context.Context, namespace, name string) error
	// Pod waits, bounded by ctx, until the builder for env's current
	// resourceVersion is ready and returns it. A builder that cannot start
	// fails at once with an error that says why and what to do.
	Pod(ctx context.Context, env *v1.Environment) (BuildPod, error)
	// Close stops every builder.
	Close() error
}

// BuildPod is one builder with its fetcher: Fission's builder pod, whose
// builder and fetcher containers share a directory.
type BuildPod interface {
	// FetchSource writes pkg's source archive, unpacked, under filename
	// in the shared directory.
	FetchSource(ctx context.Context, pkg *v1.Package, filename string) error
	// Build runs command over the fetched source, copying the build's
	// output to live as it is produced. It returns the artifact's file
	// name in the shared directory and the whole (capped) log; a failed
	// build returns an error and the log.
	Build(ctx context.Context, srcFilename, command string, live io.Writer) (artifact, log string, err error)
	// Upload stores the artifact in the storage service (zipped when
	// zip is true) and returns its download URL and checksum.
	Upload(ctx context.Context, artifact string, zip bool) (url string, sum v1.Checksum, err error)
	// Clean removes the fetched source and artifact.
	Clean(ctx context.Context, srcFilename string)
}

// HasBuilder reports whether an environment needs a builder: version 2 or
// later with a builder image, as Fission's environment watcher decides.
func HasBuilder(env *v1.Environment) bool {
	return env.Spec.Version >= 2 && env.Spec.Builder.Image != ""
}

// BuiltinBuilder is one of Isotope's built-in builder images: the
// embedded mode runs it as `isotope builder`, in Kubernetes its image
// holds the isotope binary and the toolchain (deploy/docker).
type BuiltinBuilder struct {
	// Repository is the image's repository, without registry or tag.
	Repository string
	// Command is the default build command of its environments.
	Command string
}

// BuiltinBuilders are the built-in builder images: Go to a WebAssembly
// reactor, C/C++ and Rust to WAGI modules.
var BuiltinBuilders = []BuiltinBuilder{
	{"isotope/go-wasm-builder", "isotope build go-wasm"},
	{"isotope/c-wasm-builder", "isotope build c-wasm"},
	{"isotope/rust-wasm-builder", "isotope build rust-wasm"},
}

// Builtin returns the built-in builder that image names, under any
// registry prefix and any tag or digest
// ("ghcr.io/x/isotope/c-wasm-builder:v1").
func Builtin(image string) (BuiltinBuilder, bool) {
	for _, b := range BuiltinBuilders {
		if imageRepoEndsWith(image, b.Repository) {
			return b, true
		}
	}
	return BuiltinBuilder{}, false
}

// IsBuiltinBuilderImage reports whether image is one of the built-in
// builders.
func IsBuiltinBuilderImage(image string) bool {
	_, ok := Builtin(image)
	return ok
}

// imageRepoEndsWith strips the tag and digest from an image reference and
// reports whether its repository is suffix or ends in "/"+suffix.
func imageRepoEndsWith(image, suffix string) bool {
	repo := image
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo = repo[:i]
	}
	return repo == suffix || strings.HasSuffix(repo, "/"+suffix)
}

// buildCommand picks the command for a build: the package's, else the
// environment's, else the built-in builder's default.
func buildCommand(pkg *v1.Package, env *v1.Environment) string {
	switch {
	case pkg.Spec.BuildCommand != "":
		return pkg.Spec.BuildCommand
	case env.Spec.Builder.Command != "":
		return env.Spec.Builder.Command
	}
	if b, ok := Builtin(env.Spec.Builder.Image); ok {
		return b.Command
	}
	return ""
}
