package buildermgr

import (
	"context"
	"log/slog"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/fetcher"
)

// InProcessFetcher is the embedded mode's fetcher: the fetcher library run
// in this process against each builder's shared directory, instead of a
// fetcher sidecar container.
type InProcessFetcher struct {
	// Packages reads the packages being built.
	Packages fetcher.PackageGetter
	// StorageURL is the storage service's base URL; StorageToken its
	// bearer token.
	StorageURL   string
	StorageToken string
	HTTPClient   *http.Client
	Logger       *slog.Logger
}

func (f *InProcessFetcher) fetcher(dir string) *fetcher.Fetcher {
	return fetcher.New(fetcher.Config{
		SharedDir:    dir,
		Packages:     f.Packages,
		HTTPClient:   f.HTTPClient,
		StorageToken: f.StorageToken,
		Logger:       f.Logger,
	})
}

// FetchSource implements Fetcher.
func (f *InProcessFetcher) FetchSource(ctx context.Context, dir string, pkg *v1.Package, filename string) error {
	return f.fetcher(dir).Fetch(ctx, fetcher.FunctionFetchRequest{
		FetchType:     fetcher.FetchSource,
		Package:       metav1.ObjectMeta{Name: pkg.Name, Namespace: pkg.Namespace, ResourceVersion: pkg.ResourceVersion},
		StorageSvcURL: f.StorageURL,
		Filename:      filename,
	})
}

// Upload implements Fetcher.
func (f *InProcessFetcher) Upload(ctx context.Context, dir, filename string, zip bool) (string, v1.Checksum, error) {
	resp, err := f.fetcher(dir).Upload(ctx, fetcher.ArchiveUploadRequest{
		Filename:       filename,
		StorageSvcURL:  f.StorageURL,
		ArchivePackage: zip,
	})
	if err != nil {
		return "", v1.Checksum{}, err
	}
	return resp.ArchiveDownloadURL, resp.Checksum, nil
}
