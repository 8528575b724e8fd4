package fetcher

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
)

// FetchType says which archive a fetch brings in.
type FetchType int

// Fission's fetch types, with Fission's integer values on the wire.
const (
	FetchSource     FetchType = 0 // the Package's spec.source
	FetchDeployment FetchType = 1 // the Package's spec.deployment
	FetchURL        FetchType = 2 // the request's url
)

func (t FetchType) String() string {
	switch t {
	case FetchSource:
		return "source"
	case FetchDeployment:
		return "deployment"
	case FetchURL:
		return "url"
	}
	return "unknown"
}

// FunctionFetchRequest is Fission's fetch request, JSON keys byte-exact
// (note secretList and configMapList).
type FunctionFetchRequest struct {
	FetchType FetchType `json:"fetchType"`
	// Package names the Package; only name, namespace and
	// resourceVersion are used.
	Package       metav1.ObjectMeta `json:"package"`
	URL           string            `json:"url"`
	StorageSvcURL string            `json:"storagesvcurl"`
	// Filename is the target's name under the shared directory.
	Filename    string                  `json:"filename"`
	Secrets     []v1.SecretReference    `json:"secretList"`
	ConfigMaps  []v1.ConfigMapReference `json:"configMapList"`
	KeepArchive bool                    `json:"keeparchive"`
}

// ArchiveUploadRequest asks the fetcher to archive and upload a build's
// output (DEPLOY_PKG) to the storage service.
type ArchiveUploadRequest struct {
	Filename      string `json:"filename"`
	StorageSvcURL string `json:"storagesvcurl"`
	// ArchivePackage zips Filename first; when false Filename must be a
	// file, uploaded as is.
	ArchivePackage bool `json:"archivepackage"`
}

// ArchiveUploadResponse says where the uploaded archive is and its
// sha256.
type ArchiveUploadResponse struct {
	ArchiveDownloadURL string      `json:"archiveDownloadUrl"`
	Checksum           v1.Checksum `json:"checksum"`
}

// FunctionLoadRequest is the body of a runtime's /v2/specialize.
// FunctionMetadata has no JSON tag in Fission, so its key is literally
// "FunctionMetadata".
type FunctionLoadRequest struct {
	FilePath         string             `json:"filepath"`
	FunctionName     string             `json:"functionName"`
	URL              string             `json:"url"`
	FunctionMetadata *metav1.ObjectMeta `json:"FunctionMetadata"`
	EnvVersion       int                `json:"envVersion"`
}

// FunctionSpecializeRequest is fetch + load; its keys are untagged in
// Fission, hence capitalised.
type FunctionSpecializeRequest struct {
	FetchReq FunctionFetchRequest `json:"FetchReq"`
	LoadReq  FunctionLoadRequest  `json:"LoadReq"`
}
