// Package v1 holds Isotope's resource types, group isotope.dev, version v1.
//
// The spec and status JSON field names are Fission's v1 names byte for
// byte, odd capitalisation included (InvokeStrategy, ExecutionStrategy,
// MinScale, packageref, resourceversion, relativeurl, functionweights,
// idletimeout), so that a Fission document and an Isotope document differ
// only in apiVersion. The object envelope is Kubernetes' own (TypeMeta and
// ObjectMeta from k8s.io/apimachinery) so the same types serve the embedded
// bbolt store and the Kubernetes CRDs.
//
// +kubebuilder:object:generate=true
// +groupName=isotope.dev
package v1
