package fetcher

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// InProcess is the embedded mode's fetcher: this package run inside the
// server instead of as a sidecar container, against the directory of
// each builder or function instance. One InProcess, configured once with
// the storage service's URL and token, serves both the builder manager
// (FetchSource, Upload) and the executor (FetchDeployment), so the two
// cannot disagree on how to reach storage.
type InProcess struct {
	// Packages reads the packages being built or served (the Store).
	Packages PackageGetter
	// StorageURL is the storage service's base URL; relative archive
	// URLs (archive ids) resolve against it.
	StorageURL string
	// StorageToken is sent as a bearer token to the storage service.
	StorageToken string
	// HTTPClient downloads and uploads archives; http.DefaultClient when
	// nil.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

func (f *InProcess) fetcher(dir string, packages PackageGetter) *Fetcher {
	return New(Config{
		SharedDir:    dir,
		Packages:     packages,
		HTTPClient:   f.HTTPClient,
		StorageToken: f.StorageToken,
		Logger:       f.Logger,
	})
}

// FetchSource writes pkg's source archive, unpacked, to dir/filename.
func (f *InProcess) FetchSource(ctx context.Context, dir string, pkg *v1.Package, filename string) error {
	return f.fetcher(dir, f.Packages).Fetch(ctx, FunctionFetchRequest{
		FetchType:     FetchSource,
		Package:       metav1.ObjectMeta{Name: pkg.Name, Namespace: pkg.Namespace, ResourceVersion: pkg.ResourceVersion},
		StorageSvcURL: f.StorageURL,
		Filename:      filename,
	})
}

// Upload stores dir/filename (zipped when zip is set) and returns its
// download URL and checksum.
func (f *InProcess) Upload(ctx context.Context, dir, filename string, zip bool) (string, v1.Checksum, error) {
	resp, err := f.fetcher(dir, f.Packages).Upload(ctx, ArchiveUploadRequest{
		Filename:       filename,
		StorageSvcURL:  f.StorageURL,
		ArchivePackage: zip,
	})
	if err != nil {
		return "", v1.Checksum{}, err
	}
	return resp.ArchiveDownloadURL, resp.Checksum, nil
}

// FetchDeployment writes pkg's deploy archive to dir/filename (unpacked;
// the archive itself kept beside it when keepArchive is set). It fetches
// the archive of pkg as the caller resolved it, not the store's copy of
// the moment: that one may have changed since (a rebuild finished), and
// its bytes would then not match the checksum the instance was keyed by.
// A package being rebuilt or whose latest build failed still has its
// last successful build in spec.deployment, which the executor serves
// (docs/decisions/0005-serve-last-good-build.md); Fetch refuses a
// deployment unless the status is succeeded or none, as Fission's
// fetcher does, so the snapshot it is given says succeeded, which is
// true of that archive.
func (f *InProcess) FetchDeployment(ctx context.Context, pkg *v1.Package, dir, filename string, keepArchive bool) error {
	snap := pkg.DeepCopy()
	if !snap.Spec.Deployment.IsEmpty() {
		switch snap.Status.BuildStatus {
		case v1.BuildStatusPending, v1.BuildStatusRunning, v1.BuildStatusFailed:
			snap.Status.BuildStatus = v1.BuildStatusSucceeded
		}
	}
	return f.fetcher(dir, resolvedPackage{snap}).Fetch(ctx, FunctionFetchRequest{
		FetchType:     FetchDeployment,
		Package:       metav1.ObjectMeta{Namespace: pkg.Namespace, Name: pkg.Name, ResourceVersion: pkg.ResourceVersion},
		StorageSvcURL: f.StorageURL,
		Filename:      filename,
		KeepArchive:   keepArchive,
	})
}

// resolvedPackage serves one package snapshot to the fetcher.
type resolvedPackage struct{ pkg *v1.Package }

func (r resolvedPackage) Get(_ context.Context, kind, namespace, name string) (v1.Object, error) {
	if kind != v1.KindPackage || namespace != r.pkg.Namespace || name != r.pkg.Name {
		return nil, &store.Error{Reason: store.ReasonNotFound, Message: fmt.Sprintf("%s %s/%s is not the package being fetched", kind, namespace, name)}
	}
	return r.pkg, nil
}
