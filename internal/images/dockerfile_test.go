package images_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"isotope.dev/isotope/internal/images"
)

// dockerfile is what the test reads from a Dockerfile: its stages'
// instructions, continuation lines joined, comments dropped.
type dockerfile struct {
	stages [][]instruction
}

type instruction struct{ cmd, args string }

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var df dockerfile
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" || len(df.stages) == 0 {
			df.stages = append(df.stages, nil)
		}
		df.stages[len(df.stages)-1] = append(df.stages[len(df.stages)-1], in)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return df
}

// instructions returns the arguments of every cmd instruction of a stage.
func instructions(stage []instruction, cmd string) []string {
	var out []string
	for _, in := range stage {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func jsonArray(t *testing.T, file, cmd, s string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Errorf("%s: %s %s: not a JSON array: %v", file, cmd, s, err)
	}
	return out
}

// labelRE matches key="value" or key=value pairs of a LABEL.
var labelRE = regexp.MustCompile(`([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)`)

// Every image of the table has a Dockerfile in deploy/docker and every
// Dockerfile an image; each builds the image's files with hack/images
// onto scratch and declares what the table says: USER, ENV, VOLUME,
// EXPOSE, ENTRYPOINT, CMD, title and description.
func TestDockerfilesMatchTable(t *testing.T) {
	root, err := images.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "deploy", "docker", "*.Dockerfile"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Dockerfiles in deploy/docker: %v", err)
	}
	var names []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".Dockerfile")
		names = append(names, name)
		im, ok := images.Lookup(name)
		if !ok {
			t.Errorf("%s has no image in internal/images.All: add its entry (entrypoint, cmd, ports, env, toolchain), so make images builds it too", f)
			continue
		}
		t.Run(name, func(t *testing.T) { checkDockerfile(t, f, im) })
	}
	for _, im := range images.All {
		if !slices.Contains(names, im.Name) {
			t.Errorf("image %s has no deploy/docker/%s.Dockerfile", im.Name, im.Name)
		}
	}
}

func checkDockerfile(t *testing.T, file string, im images.Image) {
	df := parseDockerfile(t, file)
	if len(df.stages) < 2 {
		t.Fatalf("%s: %d stages, want a build stage and the image", file, len(df.stages))
	}
	build, final := df.stages[len(df.stages)-2], df.stages[len(df.stages)-1]
	wantRun := fmt.Sprintf("go run ./hack/images rootfs -image %s -out /rootfs", im.Name)
	if !slices.Contains(instructions(build, "RUN"), wantRun) {
		t.Errorf("%s: the build stage does not RUN %q", file, wantRun)
	}
	if from := instructions(final, "FROM"); len(from) != 1 || from[0] != "scratch" {
		t.Errorf("%s: final stage FROM %q, want scratch (the image is its own files only)", file, from)
	}
	if cp := instructions(final, "COPY"); !slices.Equal(cp, []string{"--from=build /rootfs/ /"}) {
		t.Errorf("%s: COPY %q, want the rootfs of the build stage only", file, cp)
	}
	if u := instructions(final, "USER"); !slices.Equal(u, []string{im.User()}) {
		t.Errorf("%s: USER %q, want %s", file, u, im.User())
	}
	var env []string
	for _, e := range instructions(final, "ENV") {
		env = append(env, strings.Fields(e)...)
	}
	if !slices.Equal(env, im.EnvList()) {
		t.Errorf("%s: ENV %q, want %q", file, env, im.EnvList())
	}
	var ports []int
	for _, e := range instructions(final, "EXPOSE") {
		for _, p := range strings.Fields(e) {
			n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
			if err != nil {
				t.Errorf("%s: EXPOSE %s", file, p)
			}
			ports = append(ports, n)
		}
	}
	if !slices.Equal(ports, im.Ports) {
		t.Errorf("%s: EXPOSE %v, want %v", file, ports, im.Ports)
	}
	var vols []string
	for _, v := range instructions(final, "VOLUME") {
		vols = append(vols, jsonArray(t, file, "VOLUME", v)...)
	}
	if !slices.Equal(vols, im.Volumes) {
		t.Errorf("%s: VOLUME %v, want %v", file, vols, im.Volumes)
	}
	for _, c := range []struct {
		cmd  string
		want []string
	}{{"ENTRYPOINT", im.Entrypoint}, {"CMD", im.Cmd}} {
		got := instructions(final, c.cmd)
		if len(got) != 1 || !slices.Equal(jsonArray(t, file, c.cmd, got[0]), c.want) {
			t.Errorf("%s: %s %q, want %q", file, c.cmd, got, c.want)
		}
	}
	labels := map[string]string{}
	for _, l := range instructions(final, "LABEL") {
		for _, m := range labelRE.FindAllStringSubmatch(l, -1) {
			v := m[2]
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			}
			labels[m[1]] = v
		}
	}
	if labels["org.opencontainers.image.title"] != images.DefaultPrefix+"/"+im.Name ||
		labels["org.opencontainers.image.description"] != im.Description ||
		labels["org.opencontainers.image.version"] != images.DefaultTag {
		t.Errorf("%s: labels %v, want title %s/%s, the table's description and version %s", file, labels, images.DefaultPrefix, im.Name, images.DefaultTag)
	}
}
