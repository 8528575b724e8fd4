package v1

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func meta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

func ptr[T any](v T) *T { return &v }

// The objects the CLI makes for `env create --name go --image …
// --builder …`, `fn create --name hello --env go --src hello.go`, `route
// create --url /hello --function hello`, `timer create --cron @every 5s`.
func cliEnv() *Environment {
	return &Environment{ObjectMeta: meta("go"), Spec: EnvironmentSpec{
		Version: 3,
		Runtime: Runtime{Image: "isotope/wasm-env"},
		Builder: Builder{Image: "isotope/go-wasm-builder", Command: "build"},
	}}
}

func cliPkg() *Package {
	return &Package{ObjectMeta: meta("hello-3f2a"), Spec: PackageSpec{
		Environment: EnvironmentReference{Name: "go"},
		Source:      Archive{Literal: []byte("PK\x03\x04"), Checksum: Checksum{Sum: strings.Repeat("ab", 32)}},
	}}
}

func cliFn() *Function {
	return &Function{ObjectMeta: meta("hello"), Spec: FunctionSpec{
		Environment: EnvironmentReference{Name: "go"},
		Package:     FunctionPackageRef{PackageRef: PackageRef{Name: "hello-3f2a"}, FunctionName: "Handler"},
	}}
}

func cliRoute() *HTTPTrigger {
	return &HTTPTrigger{ObjectMeta: meta("hello-route"), Spec: HTTPTriggerSpec{
		RelativeURL:       "/hello/{name}",
		FunctionReference: FunctionReference{Name: "hello"},
	}}
}

func cliTimer() *TimeTrigger {
	return &TimeTrigger{ObjectMeta: meta("tick"), Spec: TimeTriggerSpec{
		Cron: "@every 5s", FunctionReference: FunctionReference{Name: "hello"},
	}}
}

func TestDefaultThenValidateAcceptsCLIObjects(t *testing.T) {
	for _, obj := range []Object{cliEnv(), cliPkg(), cliFn(), cliRoute(), cliTimer(),
		&Package{ObjectMeta: meta("deploy-only"), Spec: PackageSpec{
			Environment: EnvironmentReference{Name: "go"},
			Deployment:  Archive{URL: "http://127.0.0.1:8889/v1/archive?id=abc"},
		}},
		&Function{ObjectMeta: meta("nd"), Spec: FunctionSpec{
			Environment:    EnvironmentReference{Name: "go"},
			Package:        FunctionPackageRef{PackageRef: PackageRef{Name: "p"}},
			InvokeStrategy: InvokeStrategy{ExecutionStrategy: ExecutionStrategy{ExecutorType: ExecutorTypeNewdeploy, MinScale: 2}},
		}},
		&HTTPTrigger{ObjectMeta: meta("canary"), Spec: HTTPTriggerSpec{
			Prefix: ptr("/api"), Host: "Example.com:8080", Methods: []string{"post", "GET"},
			FunctionReference: FunctionReference{Type: FunctionReferenceTypeFunctionWeights,
				FunctionWeights: map[string]int{"v1": 90, "v2": 10}},
		}},
		&TimeTrigger{ObjectMeta: meta("sec"), Spec: TimeTriggerSpec{Cron: "*/10 * * * * *", Method: "POST", Subpath: "/x",
			FunctionReference: FunctionReference{Name: "hello"}}},
	} {
		Default(obj)
		if errs := Validate(obj); len(errs) > 0 {
			t.Errorf("%s %q: %v", KindOf(obj), obj.GetName(), errs.ToAggregate())
		}
	}
}

func TestDefaults(t *testing.T) {
	env := cliEnv()
	Default(env)
	if env.Namespace != "default" || env.Spec.Poolsize != 3 || env.Spec.AllowedFunctionsPerContainer != "single" ||
		env.Spec.TerminationGracePeriod != 90 || env.Spec.Builder.Image != "isotope/go-wasm-builder" || env.Spec.Runtime.Image != "isotope/wasm-env" {
		t.Errorf("env defaults: %+v", env.Spec)
	}
	env2 := &Environment{ObjectMeta: meta("v2"), Spec: EnvironmentSpec{Version: 2, Runtime: Runtime{Image: "x"}}}
	Default(env2)
	if env2.Spec.Poolsize != 0 {
		t.Errorf("version 2 poolsize = %d, want 0 (fixed pool below v3)", env2.Spec.Poolsize)
	}

	fn := cliFn()
	fn.Namespace = "team"
	fn.Spec.Secrets = []SecretReference{{Name: "s"}}
	fn.Spec.ConfigMaps = []ConfigMapReference{{Name: "c"}}
	Default(fn)
	s := fn.Spec
	es := s.InvokeStrategy.ExecutionStrategy
	if s.Environment.Namespace != "team" || s.Package.PackageRef.Namespace != "team" ||
		s.Secrets[0].Namespace != "team" || s.ConfigMaps[0].Namespace != "team" {
		t.Errorf("reference namespaces not defaulted: %+v", s)
	}
	if s.InvokeStrategy.StrategyType != "execution" || es.ExecutorType != "poolmgr" || es.SpecializationTimeout != 120 ||
		s.FunctionTimeout != 60 || s.IdleTimeout == nil || *s.IdleTimeout != 120 || s.Concurrency != 500 || s.RequestsPerPod != 1 {
		t.Errorf("function defaults: %+v", s)
	}
	if es.MaxScale != 0 || es.TargetCPUPercent != 0 {
		t.Errorf("poolmgr got newdeploy defaults: %+v", es)
	}
	zero := 0
	fn.Spec.IdleTimeout = &zero
	Default(fn)
	if *fn.Spec.IdleTimeout != 0 {
		t.Error("an explicit idletimeout 0 was overridden")
	}

	nd := &Function{ObjectMeta: meta("nd"), Spec: FunctionSpec{InvokeStrategy: InvokeStrategy{
		ExecutionStrategy: ExecutionStrategy{ExecutorType: ExecutorTypeNewdeploy, MinScale: 4}}}}
	Default(nd)
	if es := nd.Spec.InvokeStrategy.ExecutionStrategy; es.MaxScale != 4 || es.TargetCPUPercent != 80 || es.MinScale != 4 {
		t.Errorf("newdeploy defaults: %+v", es)
	}
	nd0 := &Function{ObjectMeta: meta("nd"), Spec: FunctionSpec{InvokeStrategy: InvokeStrategy{
		ExecutionStrategy: ExecutionStrategy{ExecutorType: ExecutorTypeNewdeploy}}}}
	Default(nd0)
	if es := nd0.Spec.InvokeStrategy.ExecutionStrategy; es.MaxScale != 1 || es.MinScale != 0 {
		t.Errorf("newdeploy MinScale 0: %+v", es)
	}

	for _, tc := range []struct {
		name   string
		spec   PackageSpec
		status BuildStatus
	}{
		{"deploy", PackageSpec{Deployment: Archive{URL: "http://x/a"}}, BuildStatusNone},
		{"both", PackageSpec{Deployment: Archive{URL: "http://x/a"}, Source: Archive{URL: "http://x/b"}}, BuildStatusNone},
		{"source", PackageSpec{Source: Archive{Literal: []byte("x")}}, BuildStatusPending},
		{"empty", PackageSpec{}, BuildStatusFailed},
	} {
		p := &Package{ObjectMeta: meta("p"), Spec: tc.spec}
		Default(p)
		if p.Status.BuildStatus != tc.status {
			t.Errorf("%s: status %q, want %q", tc.name, p.Status.BuildStatus, tc.status)
		}
		if tc.status == BuildStatusFailed && !strings.Contains(p.Status.BuildLog, "Both") {
			t.Errorf("%s: build log %q does not say both archives are empty", tc.name, p.Status.BuildLog)
		}
		if p.Spec.Environment.Namespace != "default" {
			t.Errorf("%s: env namespace %q", tc.name, p.Spec.Environment.Namespace)
		}
	}
	p := cliPkg()
	Default(p)
	if p.Spec.Source.Type != ArchiveTypeLiteral || p.Spec.Source.Checksum.Type != ChecksumTypeSHA256 {
		t.Errorf("archive defaults: %+v", p.Spec.Source)
	}
	p = &Package{ObjectMeta: meta("p"), Spec: PackageSpec{Deployment: Archive{URL: "http://x/a"}}}
	Default(p)
	if p.Spec.Deployment.Type != ArchiveTypeURL || p.Spec.Deployment.Checksum.Type != "" {
		t.Errorf("url archive defaults: %+v", p.Spec.Deployment)
	}

	rt := &HTTPTrigger{ObjectMeta: meta("r"), Spec: HTTPTriggerSpec{Method: "post", Methods: []string{"GET", "POST", "put"}}}
	Default(rt)
	if got := strings.Join(rt.Spec.Methods, ","); got != "POST,GET,PUT" || rt.Spec.FunctionReference.Type != "name" {
		t.Errorf("route defaults: methods %s, ref %q", got, rt.Spec.FunctionReference.Type)
	}
	rt = &HTTPTrigger{ObjectMeta: meta("r")}
	Default(rt)
	if got := strings.Join(rt.Spec.Methods, ","); got != "GET" {
		t.Errorf("route without methods: %s", got)
	}
	tt := &TimeTrigger{ObjectMeta: meta("t")}
	Default(tt)
	if tt.Spec.FunctionReference.Type != "name" {
		t.Errorf("timer ref type %q", tt.Spec.FunctionReference.Type)
	}
}

func TestDefaultIsIdempotent(t *testing.T) {
	for _, obj := range []Object{cliEnv(), cliPkg(), cliFn(), cliRoute(), cliTimer(), &Package{ObjectMeta: meta("e")},
		&HTTPTrigger{ObjectMeta: meta("r"), Spec: HTTPTriggerSpec{Method: "post", Methods: []string{"GET", "post"}}}} {
		Default(obj)
		again := obj.DeepCopyObject().(Object)
		Default(again)
		if !equality.Semantic.DeepEqual(obj, again) {
			t.Errorf("%s: second Default changed the object:\n%+v\n%+v", KindOf(obj), obj, again)
		}
	}
}

// TestValidate runs each rule on a defaulted, otherwise valid object that
// the case breaks, and checks the exact error text (field path included).
func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 64)
	cases := []struct {
		name  string
		obj   func() Object
		want  string // substring of the aggregated error; "" = valid
		keepD bool   // skip Default (to test fields Default would fill)
	}{
		{"name required", func() Object { o := cliEnv(); o.Name = ""; return o }, "metadata.name: Required value", false},
		{"name DNS label", func() Object { o := cliEnv(); o.Name = "Hello_World"; return o }, `metadata.name: Invalid value: "Hello_World": a lowercase RFC 1123 label`, false},
		{"name too long", func() Object { o := cliFn(); o.Name = long; return o }, "must be no more than 63 characters", false},
		{"name 63 ok", func() Object { o := cliFn(); o.Name = long[:63]; return o }, "", false},
		{"namespace", func() Object { o := cliEnv(); o.Namespace = "Bad.NS"; return o }, `metadata.namespace: Invalid value: "Bad.NS"`, false},
		{"label", func() Object { o := cliEnv(); o.Labels = map[string]string{"a": "not valid!"}; return o }, `metadata.labels: Invalid value: "not valid!"`, false},
		{"label key", func() Object { o := cliEnv(); o.Labels = map[string]string{"-x": "v"}; return o }, `metadata.labels: Invalid value: "-x"`, false},
		{"annotation key", func() Object { o := cliEnv(); o.Annotations = map[string]string{"a b": "v"}; return o }, `metadata.annotations: Invalid value: "a b"`, false},

		{"env version 0", func() Object { o := cliEnv(); o.Spec.Version = 0; return o }, "spec.version: Invalid value: 0: must be 1, 2 or 3", false},
		{"env version 4", func() Object { o := cliEnv(); o.Spec.Version = 4; return o }, "spec.version: Invalid value: 4", false},
		{"env image", func() Object { o := cliEnv(); o.Spec.Runtime.Image = ""; return o }, "spec.runtime.image: Required value", false},
		{"env poolsize", func() Object { o := cliEnv(); o.Spec.Poolsize = -1; return o }, "spec.poolsize: Invalid value: -1: must be >= 0", false},
		{"env afpc", func() Object { o := cliEnv(); o.Spec.AllowedFunctionsPerContainer = "many"; return o }, `spec.allowedFunctionsPerContainer: Unsupported value: "many": supported values: "single", "infinite"`, false},
		{"env grace", func() Object { o := cliEnv(); o.Spec.TerminationGracePeriod = -5; return o }, "spec.terminationGracePeriod: Invalid value: -5: must be >= 0", false},
		{"env builder v1", func() Object { o := cliEnv(); o.Spec.Version = 1; return o }, "spec.builder: Forbidden: a builder needs environment version 2 or 3", false},
		{"env v1 no builder", func() Object { o := cliEnv(); o.Spec.Version = 1; o.Spec.Builder = Builder{}; return o }, "", false},

		{"pkg env", func() Object { o := cliPkg(); o.Spec.Environment.Name = ""; return o }, "spec.environment.name: Required value", false},
		{"pkg literal size", func() Object {
			o := cliPkg()
			o.Spec.Source.Literal = make([]byte, ArchiveLiteralSizeLimit+1)
			return o
		}, "spec.source.literal: Too long: may not be more than 262144 bytes", false},
		{"pkg literal at limit", func() Object {
			o := cliPkg()
			o.Spec.Source.Literal = make([]byte, ArchiveLiteralSizeLimit)
			return o
		}, "", false},
		{"pkg archive type", func() Object { o := cliPkg(); o.Spec.Source.Type = "zip"; return o }, `spec.source.type: Unsupported value: "zip"`, false},
		{"pkg literal with url type", func() Object { o := cliPkg(); o.Spec.Source.Type = ArchiveTypeURL; return o }, "spec.source.type: Invalid value: \"url\": a url archive cannot have a literal", false},
		{"pkg url with literal type", func() Object {
			o := cliPkg()
			o.Spec.Deployment = Archive{Type: ArchiveTypeLiteral, URL: "http://h/x"}
			return o
		}, "spec.deployment.type: Invalid value: \"literal\": a literal archive cannot have a url", false},
		{"pkg both", func() Object { o := cliPkg(); o.Spec.Source.URL = "http://h/x"; return o }, "spec.source.url: Invalid value: \"http://h/x\": an archive has either a literal or a url, not both", true},
		{"pkg url scheme", func() Object { o := cliPkg(); o.Spec.Deployment.URL = "ftp://h/x"; return o }, `spec.deployment.url: Invalid value: "ftp://h/x": must be an http or https URL`, false},
		{"pkg url parse", func() Object { o := cliPkg(); o.Spec.Deployment.URL = "http://h/%zz"; return o }, `spec.deployment.url: Invalid value: "http://h/%zz"`, false},
		{"pkg archive url", func() Object { o := cliPkg(); o.Spec.Deployment.URL = "archive://x"; return o }, `spec.deployment.url: Invalid value: "archive://x": archive:// URLs`, false},
		{"pkg checksum type", func() Object { o := cliPkg(); o.Spec.Source.Checksum.Type = "md5"; return o }, `spec.source.checksum.type: Unsupported value: "md5"`, false},
		{"pkg checksum sum", func() Object { o := cliPkg(); o.Spec.Source.Checksum.Sum = strings.Repeat("AB", 32); return o }, "spec.source.checksum.sum: Invalid value: \"ABAB", false},
		{"pkg checksum short", func() Object { o := cliPkg(); o.Spec.Source.Checksum.Sum = "abc"; return o }, "must be 64 lowercase hex digits", false},
		{"pkg buildstatus", func() Object { o := cliPkg(); o.Status.BuildStatus = "done"; return o }, `status.buildstatus: Unsupported value: "done"`, false},

		{"fn env", func() Object { o := cliFn(); o.Spec.Environment.Name = ""; return o }, "spec.environment.name: Required value", false},
		{"fn pkg", func() Object { o := cliFn(); o.Spec.Package.PackageRef.Name = ""; return o }, "spec.package.packageref.name: Required value", false},
		{"fn executor", func() Object { o := cliFn(); o.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType = "lambda"; return o }, `spec.InvokeStrategy.ExecutionStrategy.ExecutorType: Unsupported value: "lambda"`, false},
		{"fn container no podspec", func() Object {
			o := cliFn()
			o.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType = ExecutorTypeContainer
			return o
		}, "spec.podspec: Required value", false},
		{"fn container", func() Object {
			o := cliFn()
			o.Spec = FunctionSpec{InvokeStrategy: InvokeStrategy{ExecutionStrategy: ExecutionStrategy{ExecutorType: ExecutorTypeContainer}},
				PodSpec: &corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
			return o
		}, "", false},
		{"fn minscale", func() Object { o := cliFn(); o.Spec.InvokeStrategy.ExecutionStrategy.MinScale = -1; return o }, "spec.InvokeStrategy.ExecutionStrategy.MinScale: Invalid value: -1: must be >= 0", false},
		{"fn maxscale", func() Object {
			o := cliFn()
			o.Spec.InvokeStrategy.ExecutionStrategy = ExecutionStrategy{ExecutorType: ExecutorTypeNewdeploy, MinScale: 3, MaxScale: 1}
			return o
		}, "spec.InvokeStrategy.ExecutionStrategy.MaxScale: Invalid value: 1: must be >= MinScale", false},
		{"fn targetcpu", func() Object { o := cliFn(); o.Spec.InvokeStrategy.ExecutionStrategy.TargetCPUPercent = 101; return o }, "spec.InvokeStrategy.ExecutionStrategy.TargetCPUPercent: Invalid value: 101: must be between 1 and 100", false},
		{"fn targetcpu neg", func() Object { o := cliFn(); o.Spec.InvokeStrategy.ExecutionStrategy.TargetCPUPercent = -1; return o }, "TargetCPUPercent: Invalid value: -1", false},
		{"fn spectimeout", func() Object {
			o := cliFn()
			o.Spec.InvokeStrategy.ExecutionStrategy.SpecializationTimeout = -1
			return o
		}, "spec.InvokeStrategy.ExecutionStrategy.SpecializationTimeout: Invalid value: -1", false},
		{"fn timeout", func() Object { o := cliFn(); o.Spec.FunctionTimeout = -1; return o }, "spec.functionTimeout: Invalid value: -1: must be > 0", false},
		{"fn timeout undefaulted", func() Object {
			o := cliFn()
			Default(o)
			o.Spec.FunctionTimeout = 0
			return o
		}, "spec.functionTimeout: Invalid value: 0", true},
		{"fn idle", func() Object { o := cliFn(); o.Spec.IdleTimeout = ptr(-1); return o }, "spec.idletimeout: Invalid value: -1", false},
		{"fn concurrency", func() Object { o := cliFn(); o.Spec.Concurrency = -1; return o }, "spec.concurrency: Invalid value: -1", false},
		{"fn rpp", func() Object { o := cliFn(); o.Spec.RequestsPerPod = -2; return o }, "spec.requestsPerPod: Invalid value: -2", false},
		{"fn retain", func() Object { o := cliFn(); o.Spec.RetainPods = -1; return o }, "spec.retainPods: Invalid value: -1", false},
		{"fn strategy", func() Object { o := cliFn(); o.Spec.InvokeStrategy.StrategyType = "lazy"; return o }, `spec.InvokeStrategy.StrategyType: Unsupported value: "lazy"`, false},
		{"fn secret ns", func() Object {
			o := cliFn()
			o.Spec.Secrets = []SecretReference{{Namespace: "other", Name: "s"}}
			return o
		}, `spec.secrets[0].namespace: Invalid value: "other": must be the function's namespace "default"`, false},
		{"fn configmap name", func() Object { o := cliFn(); o.Spec.ConfigMaps = []ConfigMapReference{{}}; return o }, "spec.configmaps[0].name: Required value", false},

		{"ht neither", func() Object { o := cliRoute(); o.Spec.RelativeURL = ""; return o }, "spec.relativeurl: Required value: one of relativeurl or prefix", false},
		{"ht both", func() Object { o := cliRoute(); o.Spec.Prefix = ptr("/p"); return o }, "spec.prefix: Forbidden: relativeurl and prefix are mutually exclusive", false},
		{"ht empty prefix", func() Object { o := cliRoute(); o.Spec.Prefix = ptr(""); return o }, "", false},
		{"ht slash", func() Object { o := cliRoute(); o.Spec.RelativeURL = "hello"; return o }, `spec.relativeurl: Invalid value: "hello": must start with "/"`, false},
		{"ht prefix slash", func() Object { o := cliRoute(); o.Spec.RelativeURL = ""; o.Spec.Prefix = ptr("api"); return o }, `spec.prefix: Invalid value: "api": must start with "/"`, false},
		{"ht unbalanced", func() Object { o := cliRoute(); o.Spec.RelativeURL = "/a/{id"; return o }, "'{' at offset 3 is never closed", false},
		{"ht unbalanced close", func() Object { o := cliRoute(); o.Spec.RelativeURL = "/a/id}"; return o }, "unexpected '}' at offset 5", false},
		{"ht param name", func() Object { o := cliRoute(); o.Spec.RelativeURL = "/a/{1d}"; return o }, `parameter name "1d" must match`, false},
		{"ht param dup", func() Object { o := cliRoute(); o.Spec.RelativeURL = "/a/{id}/{id}"; return o }, `parameter "id" appears twice`, false},
		{"ht param pattern", func() Object { o := cliRoute(); o.Spec.RelativeURL = "/a/{id:[0-9]{3}}/{rest:.*}"; return o }, "", false},
		{"ht bad pattern", func() Object { o := cliRoute(); o.Spec.RelativeURL = "/a/{id:[0-9}"; return o }, `parameter "id": bad pattern`, false},
		{"ht method", func() Object { o := cliRoute(); o.Spec.Methods = []string{"GET", "FETCH"}; return o }, `spec.methods[1]: Unsupported value: "FETCH"`, false},
		{"ht legacy method", func() Object { o := cliRoute(); o.Spec.Method = "FETCH"; return o }, `spec.method: Unsupported value: "FETCH"`, false},
		{"ht host", func() Object { o := cliRoute(); o.Spec.Host = "bad host"; return o }, `spec.host: Invalid value: "bad host"`, false},
		{"ht host port", func() Object { o := cliRoute(); o.Spec.Host = "a.com:99999"; return o }, "port must be 1..65535", false},
		{"ht host ip wildcard", func() Object { o := cliRoute(); o.Spec.Host = "*.example.com"; return o }, "", false},
		{"ht fnref name", func() Object { o := cliRoute(); o.Spec.FunctionReference.Name = ""; return o }, "spec.functionref.name: Required value", false},
		{"ht fnref type", func() Object { o := cliRoute(); o.Spec.FunctionReference.Type = "alias"; return o }, `spec.functionref.type: Unsupported value: "alias": supported values: "name", "function-weights"`, false},
		{"ht weights empty", func() Object {
			o := cliRoute()
			o.Spec.FunctionReference = FunctionReference{Type: FunctionReferenceTypeFunctionWeights}
			return o
		}, "spec.functionref.functionweights: Required value", false},
		{"ht weights sum", func() Object {
			o := cliRoute()
			o.Spec.FunctionReference = FunctionReference{Type: FunctionReferenceTypeFunctionWeights, FunctionWeights: map[string]int{"a": 50, "b": 40}}
			return o
		}, "spec.functionref.functionweights: Invalid value: 90: weights must sum to 100", false},
		{"ht weight range", func() Object {
			o := cliRoute()
			o.Spec.FunctionReference = FunctionReference{Type: FunctionReferenceTypeFunctionWeights, FunctionWeights: map[string]int{"a": 150, "b": -50}}
			return o
		}, "spec.functionref.functionweights[a]: Invalid value: 150: weight must be between 0 and 100", false},
		{"ht weight name", func() Object {
			o := cliRoute()
			o.Spec.FunctionReference = FunctionReference{Type: FunctionReferenceTypeFunctionWeights, FunctionWeights: map[string]int{"A_b": 100}}
			return o
		}, `spec.functionref.functionweights[A_b]: Invalid value: "A_b"`, false},

		{"tt cron required", func() Object { o := cliTimer(); o.Spec.Cron = ""; return o }, "spec.cron: Required value", false},
		{"tt cron fields", func() Object { o := cliTimer(); o.Spec.Cron = "* * *"; return o }, `spec.cron: Invalid value: "* * *": expected 5 to 6 fields, found 3`, false},
		{"tt cron range", func() Object { o := cliTimer(); o.Spec.Cron = "0 25 * * *"; return o }, "above maximum (23)", false},
		{"tt cron every", func() Object { o := cliTimer(); o.Spec.Cron = "@every five"; return o }, `spec.cron: Invalid value: "@every five": failed to parse duration`, false},
		{"tt cron descriptor", func() Object { o := cliTimer(); o.Spec.Cron = "@hourly"; return o }, "", false},
		{"tt cron unknown descriptor", func() Object { o := cliTimer(); o.Spec.Cron = "@fortnightly"; return o }, "unrecognized descriptor", false},
		{"tt method", func() Object { o := cliTimer(); o.Spec.Method = "YELL"; return o }, `spec.method: Unsupported value: "YELL"`, false},
		{"tt subpath", func() Object { o := cliTimer(); o.Spec.Subpath = "x"; return o }, `spec.subpath: Invalid value: "x": must start with "/"`, false},
		{"tt fnref", func() Object { o := cliTimer(); o.Spec.FunctionReference.Name = ""; return o }, "spec.functionref.name: Required value", false},
		{"tt weights", func() Object {
			o := cliTimer()
			o.Spec.FunctionReference = FunctionReference{Type: FunctionReferenceTypeFunctionWeights, FunctionWeights: map[string]int{"a": 100}}
			return o
		}, `spec.functionref.type: Unsupported value: "function-weights": supported values: "name"`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj()
			if !tc.keepD {
				Default(obj)
			}
			errs := Validate(obj)
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got %v", errs.ToAggregate())
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("want an error containing %q, got none", tc.want)
			}
			if got := errs.ToAggregate().Error(); !strings.Contains(got, tc.want) {
				t.Fatalf("want an error containing\n  %s\ngot\n  %s", tc.want, got)
			}
		})
	}
}

func TestValidateWithArchiveURLs(t *testing.T) {
	p := cliPkg()
	p.Spec.Source = Archive{URL: "archive://hello-src"}
	Default(p)
	if errs := ValidateWith(p, ValidateOptions{AllowArchiveURLs: true}); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	if errs := Validate(p); len(errs) == 0 {
		t.Fatal("archive:// accepted outside a spec directory")
	}
	p.Spec.Source.URL = "archive://"
	if errs := ValidateWith(p, ValidateOptions{AllowArchiveURLs: true}); len(errs) == 0 {
		t.Fatal("archive:// without a name accepted")
	}
}
