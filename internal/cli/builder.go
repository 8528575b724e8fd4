package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"isotope.dev/isotope/internal/builder"
	"isotope.dev/isotope/internal/server"
)

func init() { register(newBuilderCommand) }

// newBuilderCommand is the `isotope builder` role: Fission's builder API
// over a shared directory (the builder container of a builder pod, or a
// local builder process per environment in embedded mode).
func newBuilderCommand(g *Globals) *cobra.Command {
	var (
		addr        string
		timeout     time.Duration
		maxLogBytes int
	)
	cmd := &cobra.Command{
		Use:   "builder [--addr :8001] SHARED_DIR",
		Short: "Run a builder: Fission's build API over a directory shared with a fetcher",
		Long: `Run a builder: Fission's build API (POST / with {"srcPkgFilename","command"})
on --addr (default $ISOTOPE_BUILDER_ADDR, else :8001), building source packages that a fetcher put in SHARED_DIR
(/packages in a builder pod). Each build runs the command split on spaces,
with SRC_PKG and DEPLOY_PKG set, for at most --timeout; its log is returned
capped at --max-log-bytes and can be followed live at GET /logs?name=<src>.
The built-in build commands (isotope build go-wasm, c-wasm, rust-wasm) run
in-process. Flags may also be written with one dash, as Fission's builder
takes them.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, ok, err := parseSharedDir(cmd, args, "builder", "/packages")
			if !ok {
				return err
			}
			// A local builder started by the embedded server is told its
			// address in ISOTOPE_BUILDER_ADDR; an explicit --addr wins.
			if env := os.Getenv("ISOTOPE_BUILDER_ADDR"); env != "" && !cmd.Flags().Changed("addr") {
				addr = env
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return server.RunBuilder(cmd.Context(), server.BuilderOptions{
				Addr: addr, SharedDir: dir, Timeout: timeout, MaxLogBytes: maxLogBytes,
				BuildLog: cmd.OutOrStdout(), Logger: log,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", ":8001", "listen address (port 0 picks a free port; the real one is logged)")
	f.DurationVar(&timeout, "timeout", builder.DefaultTimeout, "longest a build may run before it is killed")
	f.IntVar(&maxLogBytes, "max-log-bytes", builder.DefaultMaxLogBytes, "cap on the log returned with a build (head and tail are kept)")
	return cmd
}

// parseSharedDir parses the flags and the one SHARED_DIR argument of a
// Fission-style role (builder, fetcher). ok is false when it printed help
// (err nil) or when the arguments are wrong.
func parseSharedDir(cmd *cobra.Command, args []string, role, example string) (dir string, ok bool, err error) {
	args, err = parseFissionFlags(cmd, args)
	if err != nil || args == nil {
		return "", false, err
	}
	if len(args) != 1 {
		return "", false, fmt.Errorf("%s: exactly one argument: the shared directory (e.g. %s)", role, example)
	}
	return args[0], true, nil
}

// parseFissionFlags parses args for a command with DisableFlagParsing,
// accepting Fission's single-dash long flags (-secret-dir) besides
// --secret-dir. It returns the positional arguments, or nil after
// printing help.
func parseFissionFlags(cmd *cobra.Command, args []string) ([]string, error) {
	long := map[string]bool{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) { long[f.Name] = true })
	cmd.InheritedFlags().VisitAll(func(f *pflag.Flag) { long[f.Name] = true })
	conv := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			conv = append(conv, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(a) > 2 {
			name, _, _ := strings.Cut(a[1:], "=")
			if long[name] {
				a = "-" + a
			}
		}
		conv = append(conv, a)
	}
	// cobra does not parse flags of a DisableFlagParsing command, even
	// in ParseFlags: parse them here, global ones (--server) included.
	fs := cmd.Flags()
	fs.AddFlagSet(cmd.InheritedFlags())
	if fs.Lookup("help") == nil {
		fs.BoolP("help", "h", false, "help for "+cmd.Name())
	}
	if err := fs.Parse(conv); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, cmd.Help()
		}
		return nil, err
	}
	if help, _ := fs.GetBool("help"); help {
		return nil, cmd.Help()
	}
	rest := cmd.Flags().Args()
	if rest == nil {
		rest = []string{}
	}
	return rest, nil
}
