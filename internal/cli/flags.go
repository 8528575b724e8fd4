package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagAliases makes old or short spellings of a flag (Fission's --entry,
// --ft, --pkgname …) the same flag as its main name, so Changed and help
// know one flag.
func flagAliases(cmd *cobra.Command, aliases map[string]string) {
	prev := cmd.Flags().GetNormalizeFunc()
	cmd.Flags().SetNormalizeFunc(func(f *pflag.FlagSet, name string) pflag.NormalizedName {
		if main, ok := aliases[name]; ok {
			name = main
		}
		return prev(f, name)
	})
}

// assign sets *dst to v when given: create and update set the fields
// whose flags apply (all on create, those the user gave on update).
func assign[V any](given bool, dst *V, v V) {
	if given {
		*dst = v
	}
}

// changed reports whether the user gave the flag (or one of its aliases).
func changed(cmd *cobra.Command, name string) bool {
	return cmd.Flags().Changed(name)
}

// splitCommand splits a command line into words the way a POSIX shell
// would for plain words, single and double quotes and backslashes; it
// expands nothing.
func splitCommand(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, fmt.Errorf("unterminated quote or escape in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
