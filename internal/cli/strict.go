package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// strict makes every command group refuse what it does not know. Cobra
// checks an unknown subcommand only at the root: `isotope fn craete`
// found the group fn, printed its help and exited 0, so a script with a
// typo carried on as if the command had run. A group now fails with
// "unknown command", suggesting the nearest subcommand, and prints its
// help (exit 0) only when called alone.
func strict(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = unknownSubcommand
		c.SuggestionsMinimumDistance = 2
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	for _, sub := range c.Commands() {
		strict(sub)
	}
}

// unknownSubcommand is the Args check of a command group.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	best, dist := "", 0
	for _, s := range cmd.SuggestionsFor(args[0]) { // by distance or prefix
		if d := editDistance(args[0], s); best == "" || d < dist {
			best, dist = s, d
		}
	}
	if best != "" {
		msg += fmt.Sprintf("; did you mean %q?", best)
	}
	return fmt.Errorf("%s (run '%s --help' for the commands)", msg, cmd.CommandPath())
}

// flagError adds the nearest flag's name to pflag's "unknown flag" error.
// In a group, a word before the flag is a mistyped subcommand, and that
// is the error to report (`isotope fn craete --name x`).
func flagError(cmd *cobra.Command, err error) error {
	if cmd.HasSubCommands() {
		if args := cmd.Flags().Args(); len(args) > 0 {
			if aerr := unknownSubcommand(cmd, args); aerr != nil {
				return aerr
			}
		}
	}
	msg := err.Error()
	name, ok := strings.CutPrefix(msg, "unknown flag: --")
	if !ok {
		return fmt.Errorf("%w (run '%s --help' for the flags)", err, cmd.CommandPath())
	}
	best, dist := "", 3 // suggest within an edit distance of 2
	visit := func(f *pflag.Flag) {
		if d := editDistance(name, f.Name); d < dist {
			best, dist = f.Name, d
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	if best != "" {
		return fmt.Errorf("%w; did you mean --%s? (run '%s --help' for the flags)", err, best, cmd.CommandPath())
	}
	return fmt.Errorf("%w (run '%s --help' for the flags)", err, cmd.CommandPath())
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
