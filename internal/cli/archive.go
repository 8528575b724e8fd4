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
	cmd := &cobra.Command{
		Use:     "archive",
		Aliases: []string{"ar"},
		Short:   "Upload, list, download and delete archives in the storage service",
	}
	cmd.AddCommand(
		archiveUploadCommand(g),
		archiveListCommand(g),
		archiveDownloadCommand(g),
		archiveDeleteCommand(g),
		archiveGetURLCommand(g),
	)
	return cmd
}

// archiveRunE gives a body the command's context and a storage client,
// and turns its error into one actionable line.
func archiveRunE(g *Globals, body func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		return userError(g, body(ctx, cmd, storagesvc.NewClient(g.Server, g.Token)))
	}
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
	cmd := &cobra.Command{
		Use:   "upload --name FILE",
		Short: "Upload a file; prints its archive id (-o json: id, url, checksum)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = archiveRunE(g, func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client) error {
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
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List archive ids, one per line (-o json: an array)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = archiveRunE(g, func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client) error {
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
	var id, output string
	cmd := &cobra.Command{
		Use:   "download --id ID -o FILE",
		Short: "Download an archive (checked against its sha256) to a file, or to stdout",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = archiveRunE(g, func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client) error {
		if err := requireFlag("id", id); err != nil {
			return err
		}
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
	cmd.Flags().StringVar(&id, "id", "", "archive id (or its full download URL)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write (default stdout)")
	return cmd
}

func archiveDeleteCommand(g *Globals) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete --id ID",
		Short: "Delete an archive",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = archiveRunE(g, func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client) error {
		if err := requireFlag("id", id); err != nil {
			return err
		}
		if err := c.Delete(ctx, id); err != nil {
			return err
		}
		_, err := fmt.Fprintf(cmd.OutOrStdout(), "archive '%s' deleted\n", id)
		return err
	})
	cmd.Flags().StringVar(&id, "id", "", "archive id")
	return cmd
}

func archiveGetURLCommand(g *Globals) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "get-url --id ID",
		Short: "Print an archive's download URL (the form Package specs hold)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = archiveRunE(g, func(ctx context.Context, cmd *cobra.Command, c *storagesvc.Client) error {
		if err := requireFlag("id", id); err != nil {
			return err
		}
		// Fission's get-url checks the archive exists.
		if _, err := c.Head(ctx, id); err != nil {
			return err
		}
		_, err := fmt.Fprintln(cmd.OutOrStdout(), c.URLFor(id))
		return err
	})
	cmd.Flags().StringVar(&id, "id", "", "archive id")
	return cmd
}
