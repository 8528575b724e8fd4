package fetcher

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/archive"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/tracing"
)

// Upload archives <SharedDir>/<filename> (a build's DEPLOY_PKG), uploads
// it to the storage service at storagesvcurl with Fission's multipart
// protocol, and removes the local copy. With archivepackage the file or
// directory is zipped (a directory's contents sit at the zip's root);
// without it the file is uploaded as is. The checksum is the sha256 of
// the uploaded bytes.
func (f *Fetcher) Upload(ctx context.Context, req ArchiveUploadRequest) (ArchiveUploadResponse, error) {
	ctx, span := tracing.Start(ctx, "fetcher.upload")
	resp, err := f.upload(ctx, req)
	if err == nil && span.IsRecording() {
		span.SetAttributes(tracing.KeyArchiveID.String(resp.ArchiveDownloadURL))
	}
	tracing.End(span, err)
	return resp, err
}

func (f *Fetcher) upload(ctx context.Context, req ArchiveUploadRequest) (ArchiveUploadResponse, error) {
	start := time.Now()
	src, err := f.sharedPath("filename", req.Filename)
	if err != nil {
		return ArchiveUploadResponse{}, err
	}
	if req.StorageSvcURL == "" {
		return ArchiveUploadResponse{}, errorf(http.StatusBadRequest, "storagesvcurl is empty")
	}
	st, err := os.Stat(src)
	if os.IsNotExist(err) {
		return ArchiveUploadResponse{}, errorf(http.StatusNotFound, "upload: %s does not exist in the shared directory", req.Filename)
	}
	if err != nil {
		return ArchiveUploadResponse{}, err
	}
	up := src
	if req.ArchivePackage {
		zf, err := os.CreateTemp(f.cfg.SharedDir, "."+req.Filename+".upload-*.zip")
		if err != nil {
			return ArchiveUploadResponse{}, err
		}
		zf.Close()
		defer os.Remove(zf.Name())
		if err := archive.WriteFile(zf.Name(), src); err != nil {
			return ArchiveUploadResponse{}, fmt.Errorf("upload: archive %s: %w", req.Filename, err)
		}
		up = zf.Name()
	} else if st.IsDir() {
		return ArchiveUploadResponse{}, errorf(http.StatusBadRequest, "upload: %s is a directory; set archivepackage to zip it", req.Filename)
	}

	file, err := os.Open(up)
	if err != nil {
		return ArchiveUploadResponse{}, err
	}
	defer file.Close()
	fst, err := file.Stat()
	if err != nil {
		return ArchiveUploadResponse{}, err
	}
	client := storagesvc.NewClient(req.StorageSvcURL, f.cfg.StorageToken)
	res, err := client.Upload(ctx, file, fst.Size(), req.Filename+".zip", nil)
	if err != nil {
		return ArchiveUploadResponse{}, errorf(http.StatusBadGateway, "upload %s to %s: %v", req.Filename, req.StorageSvcURL, err)
	}
	file.Close()
	if err := os.RemoveAll(src); err != nil {
		f.log.Warn("upload: cannot remove the uploaded package", "filename", req.Filename, "err", err)
	}
	f.log.Info("uploaded", "filename", req.Filename, "bytes", fst.Size(), "url", res.URL, "duration", time.Since(start))
	return ArchiveUploadResponse{
		ArchiveDownloadURL: res.URL,
		Checksum:           v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: res.Checksum.Sum},
	}, nil
}
