package spec

import (
	"os"
	"path/filepath"
	"testing"
)

// A spec directory may come from anyone: an ArchiveUploadSpec that would
// put files from outside the project into an archive (and so upload
// them) is refused, naming the file, the field and the pattern, and
// nothing is stored.
func TestApplyRefusesArchivesOutsideTheProject(t *testing.T) {
	secretDir := t.TempDir()
	writeFiles(t, secretDir, map[string]string{"id_ed25519": "PRIVATE KEY"})
	pkg := "\n---\napiVersion: isotope.dev/v1\nkind: Package\nmetadata: {name: p2}\nspec: {environment: {name: go}, deployment: {url: 'archive://leak'}}\n"
	for _, tc := range []struct {
		name, archive string
		link          string // a symlink project/<link> to secretDir
		want          []string
	}{
		{"dot-dot include", "kind: ArchiveUploadSpec\nname: leak\ninclude: ['../../../../../../etc/passwd']\n",
			"", []string{`include[0]: Invalid value: "../../../../../../etc/passwd"`, `leaves the archive's root directory`}},
		{"absolute include", "kind: ArchiveUploadSpec\nname: leak\ninclude: [" + filepath.Join(secretDir, "id_ed25519") + "]\n",
			"", []string{`include[0]: Invalid value: "` + filepath.Join(secretDir, "id_ed25519") + `"`, "absolute paths are not allowed"}},
		{"absolute rootdir", "kind: ArchiveUploadSpec\nname: leak\nrootdir: " + secretDir + "\ninclude: ['*']\n",
			"", []string{`rootdir: Invalid value: "` + secretDir + `"`, "must be relative to the project directory"}},
		{"dot-dot rootdir", "kind: ArchiveUploadSpec\nname: leak\nrootdir: ../..\ninclude: ['*']\n",
			"", []string{`rootdir: Invalid value: "../.."`, `leaves the project directory`}},
		{"symlinked file", "kind: ArchiveUploadSpec\nname: leak\ninclude: ['keys/id_ed25519']\n",
			"keys", []string{`include "keys/id_ed25519"`, "is outside", "symlink"}},
		{"symlinked directory by a glob", "kind: ArchiveUploadSpec\nname: leak\ninclude: ['k*']\n",
			"keys", []string{`include "k*"`, "is outside", "symlink"}},
		{"rootdir through a symlink", "kind: ArchiveUploadSpec\nname: leak\nrootdir: keys\ninclude: ['*']\n",
			"keys", []string{`rootdir "keys"`, "is outside"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			project, specs := newProject(t)
			if tc.link != "" {
				if err := os.Symlink(secretDir, filepath.Join(project, tc.link)); err != nil {
					t.Fatal(err)
				}
			}
			writeFiles(t, specs, map[string]string{"leak.yaml": tc.archive + pkg})
			rv := storeVersion(t, st)
			_, err := applyDir(t, st, specs, ApplyOptions{})
			wantErr(t, err, append([]string{filepath.Join(specs, "leak.yaml"), `ArchiveUploadSpec "leak"`}, tc.want...)...)
			if n := countObjects(t, st); n != 0 || storeVersion(t, st) != rv {
				t.Fatalf("%d objects stored after a refused apply", n)
			}
		})
	}
}
