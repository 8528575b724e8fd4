package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func init() { register(newEnvCommand) }

// newEnvCommand is `isotope env` (alias environment): Fission's
// environment commands, plus --runtime-command / --builder-command that
// name the local programs an embedded server runs for images it does not
// run natively.
func newEnvCommand(g *Globals) *cobra.Command {
	k := kindCommands[*v1.Environment]{g: g, noun: "environment"}
	return group("env", []string{"environment"}, "Manage environments (language runtimes and builders)",
		newEnvCreate(g), k.get("get", "Show an environment", describeEnv), newEnvList(k), newEnvUpdate(k), newEnvDelete(k))
}

// envOptions are the flags of env create and env update.
type envOptions struct {
	name, image, builder, buildcmd string
	poolsize, version              int
	resources                      resourceFlags
	graceperiod                    int64
	keeparchive, externalnetwork   bool
	imagepullsecret                string
	labels, annotations            []string
	runtimeCommand, builderCommand string
	runtimeEnv, builderEnv         []string
}

func (o *envOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "environment name")
	f.StringVar(&o.image, "image", "", "runtime image (e.g. isotope/wasm-env)")
	f.StringVar(&o.builder, "builder", "", "builder image (e.g. isotope/go-wasm-builder)")
	f.StringVar(&o.buildcmd, "buildcmd", "", "default build command for the builder")
	f.IntVar(&o.poolsize, "poolsize", 3, "number of warm generic instances (environment version 3)")
	f.IntVar(&o.version, "version", 3, "environment interface version (1, 2 or 3)")
	o.resources.addFlags(f)
	f.Int64Var(&o.graceperiod, "graceperiod", 360, "grace period in seconds before an instance is killed (alias --period)")
	f.BoolVar(&o.keeparchive, "keeparchive", false, "hand the deploy archive to the runtime without unzipping it")
	f.StringVar(&o.imagepullsecret, "imagepullsecret", "", "image pull secret (Kubernetes mode)")
	f.BoolVar(&o.externalnetwork, "externalnetwork", false, "allow access to the external network (Istio)")
	f.StringArrayVar(&o.labels, "labels", nil, "labels, k=v[,k=v…]")
	f.StringArrayVar(&o.annotations, "annotation", nil, "annotation k=v (repeatable)")
	f.StringVar(&o.runtimeCommand, "runtime-command", "", `local program that runs functions, "prog arg…" (embedded mode)`)
	f.StringVar(&o.builderCommand, "builder-command", "", `local program that builds packages, "prog arg…" (embedded mode)`)
	f.StringArrayVar(&o.runtimeEnv, "runtime-env", nil, "KEY=VALUE for the runtime (repeatable)")
	f.StringArrayVar(&o.builderEnv, "builder-env", nil, "KEY=VALUE for the builder (repeatable)")
	flagAliases(cmd, map[string]string{"period": "graceperiod"})
}

// apply writes the flags into env: every flag when all is set (create),
// else only those the user gave (update).
func (o *envOptions) apply(cmd *cobra.Command, env *v1.Environment, all bool) error {
	set := func(flag string) bool { return all || changed(cmd, flag) }
	s := &env.Spec
	assign(set("image"), &s.Runtime.Image, o.image)
	assign(set("builder"), &s.Builder.Image, o.builder)
	assign(set("buildcmd"), &s.Builder.Command, o.buildcmd)
	assign(set("poolsize"), &s.Poolsize, o.poolsize)
	assign(set("version"), &s.Version, o.version)
	assign(set("graceperiod"), &s.TerminationGracePeriod, o.graceperiod)
	assign(set("keeparchive"), &s.KeepArchive, o.keeparchive)
	assign(set("imagepullsecret"), &s.ImagePullSecret, o.imagepullsecret)
	assign(set("externalnetwork"), &s.AllowAccessToExternalNetwork, o.externalnetwork)
	o.resources.apply(&s.Resources, set)
	if set("labels") && (all && len(o.labels) > 0 || !all) {
		m, err := parseKeyValues("labels", o.labels)
		if err != nil {
			return err
		}
		env.Labels = m
	}
	if set("annotation") && (all && len(o.annotations) > 0 || !all) {
		m, err := parseKeyValues("annotation", o.annotations)
		if err != nil {
			return err
		}
		env.Annotations = m
	}
	if set("runtime-command") || set("runtime-env") {
		c, err := localContainer(s.Runtime.Container, env.Name, o.runtimeCommand, set("runtime-command"), "runtime-env", o.runtimeEnv, set("runtime-env"))
		if err != nil {
			return fmt.Errorf("--runtime-command: %w", err)
		}
		s.Runtime.Container = c
	}
	if set("builder-command") || set("builder-env") {
		c, err := localContainer(s.Builder.Container, "builder", o.builderCommand, set("builder-command"), "builder-env", o.builderEnv, set("builder-env"))
		if err != nil {
			return fmt.Errorf("--builder-command: %w", err)
		}
		s.Builder.Container = c
	}
	if s.Builder.Image != "" && s.Version < 2 {
		return fmt.Errorf("--version: an environment with a builder must be version 2 or 3, not %d", s.Version)
	}
	return nil
}

// localContainer sets the command, args and env of the container that
// tells an embedded server which local program to run.
func localContainer(c *corev1.Container, name, command string, setCommand bool, envFlag string, envs []string, setEnv bool) (*corev1.Container, error) {
	if c == nil {
		c = &corev1.Container{Name: name}
	} else {
		c = c.DeepCopy()
	}
	if setCommand {
		words, err := splitCommand(command)
		if err != nil {
			return nil, err
		}
		c.Command, c.Args = nil, nil
		if len(words) > 0 {
			c.Command, c.Args = words[:1], words[1:]
		}
	}
	if setEnv {
		c.Env = nil
		for _, kv := range envs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("--%s: %q is not KEY=VALUE", envFlag, kv)
			}
			c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: v})
		}
	}
	if len(c.Command) == 0 && len(c.Args) == 0 && len(c.Env) == 0 && (c.Name == name || c.Name == "") && c.Image == "" {
		return nil, nil // nothing left worth keeping
	}
	return c, nil
}

func newEnvCreate(g *Globals) *cobra.Command {
	o := &envOptions{}
	var sf specFlags
	cmd := createCommand(g, "Create an environment", &sf, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := requireFlag("name", o.name); err != nil {
			return err
		}
		if err := requireFlag("image", o.image); err != nil {
			return err
		}
		env := &v1.Environment{ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: g.ns()}}
		v1.SetTypeMeta(env)
		if err := o.apply(cmd, env, true); err != nil {
			return err
		}
		if done, err := sf.save(cmd, "env-"+o.name, env); done || err != nil {
			return err
		}
		if _, err := st.Create(ctx, env); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "environment '%s' created\n", o.name)
		return nil
	})
	o.addFlags(cmd)
	return cmd
}

// describeEnv is the summary `env get` prints.
func describeEnv(w io.Writer, env *v1.Environment) error {
	s := newSummary(w)
	s.add("Name", env.Name)
	s.add("Namespace", env.Namespace)
	s.add("Version", strconv.Itoa(env.Spec.Version))
	s.add("Image", env.Spec.Runtime.Image)
	s.add("Runtime command", containerCommand(env.Spec.Runtime.Container))
	s.add("Builder image", env.Spec.Builder.Image)
	s.add("Builder command", containerCommand(env.Spec.Builder.Container))
	s.add("Build command", env.Spec.Builder.Command)
	s.add("Pool size", strconv.Itoa(env.Spec.Poolsize))
	s.add("Resources", resourcesString(env.Spec.Resources))
	s.add("Grace period", fmt.Sprintf("%ds", env.Spec.TerminationGracePeriod))
	s.add("Keep archive", strconv.FormatBool(env.Spec.KeepArchive))
	s.add("Labels", mapString(env.Labels))
	s.add("Created", env.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z"))
	return s.flush()
}

// containerCommand renders a local container's command line.
func containerCommand(c *corev1.Container) string {
	if c == nil {
		return ""
	}
	return strings.Join(append(append([]string{}, c.Command...), c.Args...), " ")
}

func newEnvList(k kindCommands[*v1.Environment]) *cobra.Command {
	return k.list(listing[*v1.Environment]{
		short:   "List environments",
		headers: []string{"NAME", "IMAGE", "BUILDER_IMAGE", "POOLSIZE", "MINCPU", "MAXCPU", "MINMEMORY", "MAXMEMORY", "EXTNET", "GRACETIME", "NAMESPACE"},
		row: func(e *v1.Environment) []string {
			r := e.Spec.Resources
			return []string{e.Name, e.Spec.Runtime.Image, e.Spec.Builder.Image, strconv.Itoa(e.Spec.Poolsize),
				quantity(r.Requests, corev1.ResourceCPU), quantity(r.Limits, corev1.ResourceCPU),
				quantity(r.Requests, corev1.ResourceMemory), quantity(r.Limits, corev1.ResourceMemory),
				strconv.FormatBool(e.Spec.AllowAccessToExternalNetwork), strconv.FormatInt(e.Spec.TerminationGracePeriod, 10), e.Namespace}
		},
	})
}

func newEnvUpdate(k kindCommands[*v1.Environment]) *cobra.Command {
	o := &envOptions{}
	cmd := k.update("Change an environment (only the flags given)", &o.name, nil, func(cmd *cobra.Command, env *v1.Environment) error {
		return o.apply(cmd, env, false)
	})
	o.addFlags(cmd)
	return cmd
}

func newEnvDelete(k kindCommands[*v1.Environment]) *cobra.Command {
	var force bool
	cmd := namedCommand(k.g, "delete", "Delete an environment", k.noun, func(ctx context.Context, cmd *cobra.Command, st store.Store, name string) error {
		if !force {
			users, err := functionsWhere(ctx, st, k.g.ns(), func(fn *v1.Function) bool { return fn.Spec.Environment.Name == name })
			if err != nil {
				return err
			}
			if len(users) > 0 {
				return fmt.Errorf("environment '%s' is used by function(s) %s; delete them first or use --force", name, functionNames(users))
			}
		}
		missing, err := k.deleteOne(ctx, st, cmd.OutOrStdout(), name, force)
		if missing {
			fmt.Fprintf(cmd.OutOrStdout(), "environment '%s' not found; nothing to delete\n", name)
		}
		return err
	})
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete even if functions use it; succeed if it does not exist")
	return cmd
}
