package executor

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/store"
)

// StoreFetcher is the embedded mode's instance.Fetcher: Fission's fetcher
// (package fetcher) run in-process, reading Packages from a store and
// downloading url archives from the storage service.
type StoreFetcher struct {
	// Packages is where the Package is read (the Store).
	Packages fetcher.PackageGetter
	// StorageURL resolves archive URLs that are relative (archive ids).
	StorageURL string
	// StorageToken is sent as a bearer token to the storage service.
	StorageToken string
	// HTTPClient downloads archives; http.DefaultClient when nil.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

var _ instance.Fetcher = StoreFetcher{}

// FetchDeployment implements instance.Fetcher. It fetches the deploy
// archive of pkg as the executor resolved it, not the store's copy of the
// moment: that one may have changed since (a rebuild finished), and its
// bytes would then not match the checksum the instance was keyed by.
// A package being rebuilt or whose latest build failed still has its
// last successful build in spec.deployment, which the executor serves
// (docs/decisions/0005-serve-last-good-build.md); Fission's fetcher
// refuses a deployment unless the status is succeeded or none, so the
// snapshot it is given says succeeded, which is true of that archive.
func (s StoreFetcher) FetchDeployment(ctx context.Context, pkg *v1.Package, dir, filename string, keepArchive bool) error {
	var packages fetcher.PackageGetter = s.Packages
	if pkg != nil {
		snap := pkg.DeepCopy()
		if !snap.Spec.Deployment.IsEmpty() {
			switch snap.Status.BuildStatus {
			case v1.BuildStatusPending, v1.BuildStatusRunning, v1.BuildStatusFailed:
				snap.Status.BuildStatus = v1.BuildStatusSucceeded
			}
		}
		packages = resolvedPackage{snap}
	}
	f := fetcher.New(fetcher.Config{
		SharedDir:    dir,
		Packages:     packages,
		HTTPClient:   s.HTTPClient,
		StorageToken: s.StorageToken,
		Logger:       s.Logger,
	})
	return f.Fetch(ctx, fetcher.FunctionFetchRequest{
		FetchType:     fetcher.FetchDeployment,
		Package:       metav1.ObjectMeta{Namespace: pkg.Namespace, Name: pkg.Name, ResourceVersion: pkg.ResourceVersion},
		StorageSvcURL: s.StorageURL,
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
