// Package buildermgr is Isotope's builder manager: it watches
// Environments and keeps exactly one builder per (environment,
// resourceVersion) for those with a builder image, and watches Packages and
// drives each through Fission's build state machine
// pending → running → succeeded | failed.
//
// Where builders run is behind the Builders seam: local supervised
// processes in embedded mode (local.go), a Deployment and Service per
// environment version in Kubernetes mode. The build itself only talks to a
// BuildPod: fetch the source into the builder's shared directory, run the
// build command, upload the deploy archive, clean up.
//
// Controllers here are level-triggered: after a crash, every Package left
// "running" is rebuilt, so no package stays running forever (fission#2926).
package buildermgr
