package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/storagesvc"
)

func init() { register(newArchiveCommand) }

// newArchiveCommand is `isotope archive` (alias ar): Fission's archive
// commands against the storage service mounted on the API listener.
func newArchiveCommand(g *Globals) *cobra.Command {
	return group("archive", []string{"ar"}, "Upload, list, download and delete archives in the storage service",
		archiveUploadCommand(g),
		archiveListCommand(g),
		archiveDownloadCommand(g),
		archiveDeleteCommand(g),
		archiveGetURLCommand(g),
	)
}

// archiveCommand is an archive subcommand: its body gets the command's
// context and a storage client, and its error becomes one actionable line.
func archiveCommand(g *Globals, use, short string, body func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client) error) *cobra.Command {
	open := func(g *Globals) (*storagesvc.Client, error) { return g.storageClient(), nil }
	return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: runWith(g, open, body)}
}

// archiveIDCommand is an archive subcommand on the archive that --id
// names, which it requires before the body runs.
func archiveIDCommand(g *Globals, use, short, idHelp string, body func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client, id string) error) *cobra.Command {
	var id string
	cmd := archiveCommand(g, use, short, func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client) error {
		if err := requireFlag("id", id); err != nil {
			return err
		}
		return body(ctx, cmd, c, id)
	})
	cmd.Flags().StringVar(&id, "id", "", idHelp)
	return cmd
}

// progressBar returns a byte progress bar on stderr when stderr is a
// terminal, else nil (no output at all in scripts and logs).
func progressBar(cmd *cobra.Command, size int64, what string) *progressbar.ProgressBar {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionClearOnFinish())
}

func archiveUploadCommand(g *Globals) *cobra.Command {
	var name, output string
	cmd := archiveCommand(g, "upload --name FILE", "Upload a file; prints its archive id (-o json: id, url, checksum)", func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client) error {
		if err := requireFlag("name", name); err != nil {
			return err
		}
		if output != "" && output != formatJSON {
			return fmt.Errorf("--output: unknown format %q (want json)", output)
		}
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("--name: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("--name: %w", err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("--name: %s is not a regular file", name)
		}
		if err := checkZipFile("name", name); err != nil {
			return err
		}
		var progress io.Writer
		if bar := progressBar(cmd, st.Size(), "uploading "+filepath.Base(name)); bar != nil {
			progress = bar
			defer bar.Finish()
		}
		res, err := c.Upload(ctx, f, st.Size(), name, progress)
		if err != nil {
			return err
		}
		if output == formatJSON {
			return encode(cmd.OutOrStdout(), struct {
				ID       string      `json:"id"`
				URL      string      `json:"url"`
				Checksum v1.Checksum `json:"checksum"`
			}{res.ID, res.URL, res.Checksum}, formatJSON)
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), res.ID)
		return err
	})
	cmd.Flags().StringVar(&name, "name", "", "file to upload")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func archiveListCommand(g *Globals) *cobra.Command {
	var output string
	cmd := archiveCommand(g, "list", "List archive ids, one per line (-o json: an array)", func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		ids, err := c.List(ctx)
		if err != nil {
			return err
		}
		if output != "" {
			if ids == nil {
				ids = []string{}
			}
			return encode(cmd.OutOrStdout(), ids, output)
		}
		for _, id := range ids {
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), id); err != nil {
				return err
			}
		}
		return nil
	})
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

func archiveDownloadCommand(g *Globals) *cobra.Command {
	var output string
	cmd := archiveIDCommand(g, "download --id ID -o FILE", "Download an archive (checked against its sha256) to a file, or to stdout", "archive id (or its full download URL)",
		func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client, id string) error {
			return writeOutput(output, cmd.OutOrStdout(), func(w io.Writer) error {
				rc, info, err := c.Open(ctx, id)
				if err != nil {
					return err
				}
				defer rc.Close()
				var r io.Reader = rc
				if bar := progressBar(cmd, info.Size, "downloading"); bar != nil {
					r = io.TeeReader(rc, bar)
					defer bar.Finish()
				}
				_, err = io.Copy(w, r)
				return err
			})
		})
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write (default stdout)")
	return cmd
}

func archiveDeleteCommand(g *Globals) *cobra.Command {
	return archiveIDCommand(g, "delete --id ID", "Delete an archive", "archive id",
		func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client, id string) error {
			if err := c.Delete(ctx, id); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "archive '%s' deleted\n", id)
			return err
		})
}

func archiveGetURLCommand(g *Globals) *cobra.Command {
	return archiveIDCommand(g, "get-url --id ID", "Print an archive's download URL (the form Package specs hold)", "archive id",
		func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client, id string) error {
			// Fission's get-url checks the archive exists.
			if _, err := c.Head(ctx, id); err != nil {
				return err
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), c.URLFor(id))
			return err
		})
}
