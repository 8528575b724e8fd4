package executor

import (
	"context"
	"log/slog"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/fetcher"
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

// FetchDeployment implements instance.Fetcher.
func (s StoreFetcher) FetchDeployment(ctx context.Context, pkg *v1.Package, dir, filename string, keepArchive bool) error {
	f := fetcher.New(fetcher.Config{
		SharedDir:    dir,
		Packages:     s.Packages,
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
