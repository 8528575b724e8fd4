// Package nodeagent is a test double for the kubelet: a node agent built
// on virtual-kubelet that registers a Node with the kube-apiserver and
// runs every Pod scheduled to it as local processes, so that Isotope's
// Kubernetes tests exercise real Deployments, ReplicaSets, the scheduler,
// EndpointSlices and our controllers without containers.
//
// It is not a kubelet and isolates nothing. For each Pod it
//
//   - allocates a loopback address 127.0.x.y of its own (Linux routes all
//     of 127/8 to lo), reported as status.podIP, so pods bind the same
//     ports side by side;
//   - runs each container from its image when Config.Layout (an OCI
//     image layout, as make images writes) holds it: the image unpacked
//     once, its ENTRYPOINT and CMD, argv[0] found on the image's PATH
//     inside it, its ENV; paths of the image in arguments and variables
//     map into the unpacked files, and the directories its user may
//     write become the pod's own;
//   - otherwise maps the image to a program of this machine through its
//     image rules (Isotope's images all run the isotope binary with the
//     image's ENTRYPOINT and CMD), logging each such fallback when a
//     layout is set; other images are refused with an ErrImagePull-style
//     waiting reason that names the image;
//   - rewrites the listen address (--addr) to the pod's address and the
//     container's port, and mount paths of emptyDir, secret and configMap
//     volumes (/packages, /userfunc, …) to per-pod directories shared by
//     the pod's containers, in the arguments and environment values;
//   - passes the pod's env (literal values, downward-API fields, secret
//     and configMap keys) plus a few host variables (PATH, HOME, Go's
//     cache settings; for containers run from an image only Go's build
//     and module caches, which stand in for a cache volume), Config.Env (the stand-in for a service-account
//     mount) and MountsEnv, which says where the pod's mounts really are
//     for paths that travel in request bodies, out of the agent's reach;
//   - reports phase, podIP, container states and readiness (HTTP GET or
//     TCP readiness probes against the pod's address), restarts
//     containers per restartPolicy, and on delete kills each container's
//     process group (SIGTERM, then SIGKILL after the grace period).
//
// Liveness and startup probes, init containers, resource limits, image
// pulls and every volume type but emptyDir, secret and configMap are not
// modelled: pods that need them are refused with a message saying so.
// Nor are users: every process runs as the agent's user, whatever the
// image's USER, and nothing is chrooted (paths are rewritten instead).
package nodeagent
