// Package images builds Isotope's container images without a container
// daemon and without pulling a base image, reads them back, and pushes
// them to a registry.
//
// Every image is the static isotope binary on an empty base (plus, for
// builder images, the toolchain their builds run), assembled as an OCI
// image with go-containerregistry and written as an OCI image layout and
// as one `docker save` tarball per image. The images are reproducible:
// the same commit gives the same digests (file times are the epoch,
// entries are sorted, owners are numeric, the creation time is the
// commit's). All is the list of images; deploy/docker holds a Dockerfile
// per image for people who build with Docker, and a test keeps the two
// in agreement.
//
// `make images` runs hack/images, a small command over this package.
// The node agent (internal/testing/nodeagent) runs pods' containers from an
// image layout with Layout and Unpack.
package images
