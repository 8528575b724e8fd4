package rustwasm

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// manifest is what the builder needs from a Cargo.toml when it builds a
// crate without cargo: its name and edition, and whether it needs cargo
// after all (dependencies, a build script). It reads the plain TOML
// cargo new writes (sections, key = "value"), not every TOML form; an
// unusual manifest errs on the side of "needs cargo".
type manifest struct {
	name, edition string
	// cdylib says [lib] crate-type names "cdylib": the crate is a
	// handler library; libPath is [lib] path, if set.
	cdylib  bool
	libPath string
	// needsCargo says why the crate cannot be built with rustc alone
	// ("" if it can).
	needsCargo string
}

func readManifest(path string) (manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return manifest{}, err
	}
	defer f.Close()
	var m manifest
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := stripComment(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[] ")
			// [dependencies.foo], [target.'cfg(…)'.dependencies.foo]: a
			// dependency in a section of its own.
			if i := strings.Index(section, "dependencies."); i >= 0 && !strings.HasSuffix(section[:i], "dev-") {
				m.need(fmt.Sprintf("Cargo.toml:%d: it declares a dependency ([%s])", n, section))
			}
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.Trim(strings.TrimSpace(val), `"'`)
		switch {
		case section == "package" && key == "name":
			m.name = val
		case section == "package" && key == "edition":
			m.edition = val
		case section == "lib" && key == "crate-type":
			m.cdylib = strings.Contains(val, `"cdylib"`) || strings.Contains(val, `'cdylib'`)
		case section == "lib" && key == "path":
			m.libPath = val
		case section == "package" && key == "build" && val != "false":
			m.need(fmt.Sprintf("Cargo.toml:%d: it has a build script", n))
		case strings.HasSuffix(section, "dependencies") && !strings.HasSuffix(section, "dev-dependencies"):
			m.need(fmt.Sprintf("Cargo.toml:%d: it declares the dependency %s", n, key))
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if m.name == "" {
		return m, fmt.Errorf("Cargo.toml has no [package] name")
	}
	return m, nil
}

// stripComment removes a TOML comment (from a # outside quotes) and the
// surrounding space.
func stripComment(line string) string {
	var quote rune
	for i, c := range line {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && c == '#':
			return strings.TrimSpace(line[:i])
		}
	}
	return strings.TrimSpace(line)
}

func (m *manifest) need(why string) {
	if m.needsCargo == "" {
		m.needsCargo = why
	}
}
