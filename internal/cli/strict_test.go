package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// execute runs the command tree in-process with args.
func execute(args ...string) (string, error) {
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// Every group, at every level, refuses an unknown subcommand (it used to
// print its help and succeed), suggesting the nearest one; alone, it
// prints its help. Every leaf either declares its arguments or parses
// them itself.
func TestUnknownCommandsFailAtEveryLevel(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.Fields(c.CommandPath())[1:]
		switch {
		case c.HasSubCommands():
			if _, err := execute(append(path, "zzbogus")...); err == nil || !strings.Contains(err.Error(), `unknown command "zzbogus" for "`+c.CommandPath()+`"`) {
				t.Errorf("%s zzbogus: %v, want unknown command", c.CommandPath(), err)
			}
			sub := c.Commands()[0].Name()
			typo := sub[:len(sub)-1] + "x" + sub[len(sub)-1:] // one letter added
			if _, err := execute(append(path, typo)...); err == nil || !strings.Contains(err.Error(), `did you mean "`) {
				t.Errorf("%s %s: %v, want a suggestion", c.CommandPath(), typo, err)
			}
			if out, err := execute(path...); err != nil || !strings.Contains(out, "Usage:") {
				t.Errorf("%s alone: %v %q, want its help", c.CommandPath(), err, out)
			}
		case c.Args == nil && !c.DisableFlagParsing:
			t.Errorf("%s takes any arguments silently: give it Args", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(NewRootCommand())

	_, err := execute("fn", "craete", "--name", "x")
	if err == nil || err.Error() != `unknown command "craete" for "isotope fn"; did you mean "create"? (run 'isotope fn --help' for the commands)` {
		t.Errorf("fn craete: %v", err)
	}
	_, err = execute("fn", "create", "--nmae", "x")
	if err == nil || !strings.Contains(err.Error(), "unknown flag: --nmae; did you mean --name?") {
		t.Errorf("fn create --nmae: %v", err)
	}
	_, err = execute("fn", "list", "--servr", "http://x")
	if err == nil || !strings.Contains(err.Error(), "did you mean --server?") {
		t.Errorf("an inherited flag is not suggested: %v", err)
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"craete", "create", 2}, {"nmae", "name", 2}, {"lst", "list", 1}, {"same", "same", 0}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}

func TestMQTTypos(t *testing.T) {
	if _, err := execute("mqt", "craete"); err == nil || !strings.Contains(err.Error(), `did you mean "create"?`) {
		t.Errorf("mqt craete: %v", err)
	}
	if _, err := execute("mqt", "create", "--topc", "x"); err == nil || !strings.Contains(err.Error(), "did you mean --topic?") {
		t.Errorf("mqt create --topc: %v", err)
	}
	if _, err := execute("mqt", "create", "--name", "q", "--function", "f", "--mqtype", "kafka", "--topic", "t", "--metadata", "novalue"); err == nil || !strings.Contains(err.Error(), "--metadata") {
		t.Errorf("mqt create --metadata novalue: %v", err)
	}
}
