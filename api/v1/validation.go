package v1

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/robfig/cron/v3"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateOptions adjusts Validate for callers that see objects before
// they are final.
type ValidateOptions struct {
	// AllowArchiveURLs accepts "archive://<name>" package URLs, which a
	// spec directory uses to name an ArchiveUploadSpec that `spec apply`
	// replaces with a real archive before storing the package.
	AllowArchiveURLs bool
}

// Validate checks an object as Fission's validating webhook does and
// returns every problem with its field path, e.g.
// "spec.InvokeStrategy.ExecutionStrategy.MaxScale: Invalid value: 1: must be >= MinScale".
// Callers run Default first: fields that Default fills are required here.
func Validate(obj Object) field.ErrorList {
	return ValidateWith(obj, ValidateOptions{})
}

// ValidateWith is Validate with options.
func ValidateWith(obj Object, opts ValidateOptions) field.ErrorList {
	errs := validateMeta(obj)
	spec := field.NewPath("spec")
	switch o := obj.(type) {
	case *Environment:
		errs = append(errs, validateEnvironmentSpec(&o.Spec, spec)...)
	case *Package:
		errs = append(errs, validatePackageSpec(&o.Spec, spec, opts)...)
		errs = append(errs, validateBuildStatus(o.Status.BuildStatus, field.NewPath("status", "buildstatus"))...)
	case *Function:
		errs = append(errs, validateFunctionSpec(o, spec)...)
	case *HTTPTrigger:
		errs = append(errs, validateHTTPTriggerSpec(&o.Spec, spec)...)
	case *TimeTrigger:
		errs = append(errs, validateTimeTriggerSpec(&o.Spec, spec)...)
	case *MessageQueueTrigger:
		errs = append(errs, validateMessageQueueTriggerSpec(&o.Spec, spec)...)
	case *Secret:
		errs = append(errs, validateSecret(o)...)
	case *ConfigMap:
		errs = append(errs, validateConfigMap(o)...)
	case *CanaryConfig:
		errs = append(errs, validateCanaryConfig(o)...)
	default:
		errs = append(errs, field.InternalError(nil, fmt.Errorf("unknown object type %T", obj)))
	}
	return errs
}

func validateMeta(obj Object) field.ErrorList {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	errs = append(errs, validateName(obj.GetName(), meta.Child("name"))...)
	if ns := obj.GetNamespace(); ns == "" {
		errs = append(errs, field.Required(meta.Child("namespace"), ""))
	} else {
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, field.Invalid(meta.Child("namespace"), ns, msg))
		}
	}
	errs = append(errs, metavalidation.ValidateLabels(obj.GetLabels(), meta.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(obj.GetAnnotations(), meta.Child("annotations"))...)
	return errs
}

// validateName requires a DNS-1123 label: Isotope names become parts of
// URLs, file names and (in Kubernetes mode) Deployment and Service names.
func validateName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	return errs
}

func nonNegative(v int64, p *field.Path) field.ErrorList {
	if v < 0 {
		return field.ErrorList{field.Invalid(p, v, "must be >= 0")}
	}
	return nil
}

// --- Environment ---

func validateEnvironmentSpec(s *EnvironmentSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Version < 1 || s.Version > 3 {
		errs = append(errs, field.Invalid(p.Child("version"), s.Version, "must be 1, 2 or 3"))
	}
	if s.Runtime.Image == "" {
		errs = append(errs, field.Required(p.Child("runtime", "image"), ""))
	}
	errs = append(errs, nonNegative(int64(s.Poolsize), p.Child("poolsize"))...)
	switch s.AllowedFunctionsPerContainer {
	case "", AllowedFunctionsPerContainerSingle, AllowedFunctionsPerContainerInfinite:
	default:
		errs = append(errs, field.NotSupported(p.Child("allowedFunctionsPerContainer"), s.AllowedFunctionsPerContainer,
			[]AllowedFunctionsPerContainer{AllowedFunctionsPerContainerSingle, AllowedFunctionsPerContainerInfinite}))
	}
	errs = append(errs, nonNegative(s.TerminationGracePeriod, p.Child("terminationGracePeriod"))...)
	b := s.Builder
	if (b.Image != "" || b.Command != "" || b.Container != nil || b.PodSpec != nil) && s.Version < 2 {
		errs = append(errs, field.Forbidden(p.Child("builder"), "a builder needs environment version 2 or 3"))
	}
	return errs
}

// --- Package ---

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func validatePackageSpec(s *PackageSpec, p *field.Path, opts ValidateOptions) field.ErrorList {
	var errs field.ErrorList
	if s.Environment.Name == "" {
		errs = append(errs, field.Required(p.Child("environment", "name"), ""))
	} else {
		errs = append(errs, validateName(s.Environment.Name, p.Child("environment", "name"))...)
	}
	errs = append(errs, validateArchive(&s.Source, p.Child("source"), opts)...)
	errs = append(errs, validateArchive(&s.Deployment, p.Child("deployment"), opts)...)
	return errs
}

func validateArchive(a *Archive, p *field.Path, opts ValidateOptions) field.ErrorList {
	var errs field.ErrorList
	if len(a.Literal) > ArchiveLiteralSizeLimit {
		errs = append(errs, field.TooLong(p.Child("literal"), nil, ArchiveLiteralSizeLimit))
	}
	if len(a.Literal) > 0 && a.URL != "" {
		errs = append(errs, field.Invalid(p.Child("url"), a.URL, "an archive has either a literal or a url, not both"))
	}
	switch a.Type {
	case "":
	case ArchiveTypeLiteral:
		if a.URL != "" {
			errs = append(errs, field.Invalid(p.Child("type"), a.Type, "a literal archive cannot have a url"))
		}
	case ArchiveTypeURL:
		if len(a.Literal) > 0 {
			errs = append(errs, field.Invalid(p.Child("type"), a.Type, "a url archive cannot have a literal"))
		}
		if a.URL == "" {
			errs = append(errs, field.Required(p.Child("url"), "type is url"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), a.Type, []ArchiveType{ArchiveTypeLiteral, ArchiveTypeURL}))
	}
	if a.URL != "" {
		errs = append(errs, validateArchiveURL(a.URL, p.Child("url"), opts)...)
	}
	cs := p.Child("checksum")
	switch a.Checksum.Type {
	case "", ChecksumTypeSHA256:
	default:
		errs = append(errs, field.NotSupported(cs.Child("type"), a.Checksum.Type, []ChecksumType{ChecksumTypeSHA256}))
	}
	if a.Checksum.Sum != "" && !sha256Hex.MatchString(a.Checksum.Sum) {
		errs = append(errs, field.Invalid(cs.Child("sum"), a.Checksum.Sum, "must be 64 lowercase hex digits (sha256)"))
	}
	return errs
}

func validateArchiveURL(raw string, p *field.Path, opts ValidateOptions) field.ErrorList {
	u, err := url.Parse(raw)
	if err != nil {
		return field.ErrorList{field.Invalid(p, raw, err.Error())}
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return field.ErrorList{field.Invalid(p, raw, "has no host")}
		}
	case "archive":
		if !opts.AllowArchiveURLs {
			return field.ErrorList{field.Invalid(p, raw, "archive:// URLs name an ArchiveUploadSpec and are only valid in a spec directory")}
		}
		if u.Host == "" {
			return field.ErrorList{field.Invalid(p, raw, "must be archive://<ArchiveUploadSpec name>")}
		}
	default:
		return field.ErrorList{field.Invalid(p, raw, "must be an http or https URL")}
	}
	return nil
}

func validateBuildStatus(s BuildStatus, p *field.Path) field.ErrorList {
	switch s {
	case "", BuildStatusPending, BuildStatusRunning, BuildStatusSucceeded, BuildStatusFailed, BuildStatusNone:
		return nil
	}
	return field.ErrorList{field.NotSupported(p, s, []BuildStatus{BuildStatusPending, BuildStatusRunning,
		BuildStatusSucceeded, BuildStatusFailed, BuildStatusNone})}
}

// --- Function ---

func validateFunctionSpec(f *Function, p *field.Path) field.ErrorList {
	s := &f.Spec
	var errs field.ErrorList
	es := s.InvokeStrategy.ExecutionStrategy
	esp := p.Child("InvokeStrategy", "ExecutionStrategy")
	switch es.ExecutorType {
	case "", ExecutorTypePoolmgr, ExecutorTypeNewdeploy, ExecutorTypeContainer:
	default:
		errs = append(errs, field.NotSupported(esp.Child("ExecutorType"), es.ExecutorType,
			[]ExecutorType{ExecutorTypePoolmgr, ExecutorTypeNewdeploy, ExecutorTypeContainer}))
	}
	switch s.InvokeStrategy.StrategyType {
	case "", StrategyTypeExecution:
	default:
		errs = append(errs, field.NotSupported(p.Child("InvokeStrategy", "StrategyType"), s.InvokeStrategy.StrategyType,
			[]StrategyType{StrategyTypeExecution}))
	}
	// The container executor runs the function's own pod spec and needs
	// neither environment nor package (Fission 1.14+).
	if es.ExecutorType == ExecutorTypeContainer {
		if s.PodSpec == nil || len(s.PodSpec.Containers) != 1 {
			errs = append(errs, field.Required(p.Child("podspec"), "the container executor needs a pod spec with exactly one container"))
		}
	} else {
		ep := p.Child("environment", "name")
		if s.Environment.Name == "" {
			errs = append(errs, field.Required(ep, ""))
		} else {
			errs = append(errs, validateName(s.Environment.Name, ep)...)
		}
		pp := p.Child("package", "packageref", "name")
		if s.Package.PackageRef.Name == "" {
			errs = append(errs, field.Required(pp, ""))
		} else {
			errs = append(errs, validateName(s.Package.PackageRef.Name, pp)...)
		}
	}
	errs = append(errs, nonNegative(int64(es.MinScale), esp.Child("MinScale"))...)
	if es.MaxScale != 0 && es.MaxScale < es.MinScale {
		errs = append(errs, field.Invalid(esp.Child("MaxScale"), es.MaxScale, "must be >= MinScale"))
	} else {
		errs = append(errs, nonNegative(int64(es.MaxScale), esp.Child("MaxScale"))...)
	}
	if es.TargetCPUPercent != 0 && (es.TargetCPUPercent < 1 || es.TargetCPUPercent > 100) {
		errs = append(errs, field.Invalid(esp.Child("TargetCPUPercent"), es.TargetCPUPercent, "must be between 1 and 100"))
	}
	errs = append(errs, nonNegative(int64(es.SpecializationTimeout), esp.Child("SpecializationTimeout"))...)
	if s.FunctionTimeout <= 0 {
		errs = append(errs, field.Invalid(p.Child("functionTimeout"), s.FunctionTimeout, "must be > 0 (seconds)"))
	}
	if s.IdleTimeout != nil {
		errs = append(errs, nonNegative(int64(*s.IdleTimeout), p.Child("idletimeout"))...)
	}
	errs = append(errs, nonNegative(int64(s.Concurrency), p.Child("concurrency"))...)
	errs = append(errs, nonNegative(int64(s.RequestsPerPod), p.Child("requestsPerPod"))...)
	errs = append(errs, nonNegative(int64(s.RetainPods), p.Child("retainPods"))...)
	// Secrets and config maps are mounted into the function's instances,
	// so they must live in its namespace (the executor refuses others).
	for i, r := range s.Secrets {
		errs = append(errs, validateLocalRef(r.Namespace, r.Name, f.Namespace, p.Child("secrets").Index(i))...)
	}
	for i, r := range s.ConfigMaps {
		errs = append(errs, validateLocalRef(r.Namespace, r.Name, f.Namespace, p.Child("configmaps").Index(i))...)
	}
	return errs
}

func validateLocalRef(ns, name, objNS string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		for _, msg := range validation.IsDNS1123Subdomain(name) {
			errs = append(errs, field.Invalid(p.Child("name"), name, msg))
		}
	}
	if ns != "" && ns != objNS {
		errs = append(errs, field.Invalid(p.Child("namespace"), ns, "must be the function's namespace "+strconv.Quote(objNS)))
	}
	return errs
}

// --- HTTPTrigger ---

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}

func validMethod(m string) bool {
	for _, v := range httpMethods {
		if m == v {
			return true
		}
	}
	return false
}

func validateHTTPTriggerSpec(s *HTTPTriggerSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	prefix := ""
	if s.Prefix != nil {
		prefix = *s.Prefix
	}
	switch {
	case s.RelativeURL == "" && prefix == "":
		errs = append(errs, field.Required(p.Child("relativeurl"), "one of relativeurl or prefix must be set"))
	case s.RelativeURL != "" && prefix != "":
		errs = append(errs, field.Forbidden(p.Child("prefix"), "relativeurl and prefix are mutually exclusive"))
	}
	if s.RelativeURL != "" {
		errs = append(errs, validateRoutePath(s.RelativeURL, p.Child("relativeurl"))...)
		errs = append(errs, validateReservedRoute(s.RelativeURL, false, p.Child("relativeurl"))...)
	}
	if prefix != "" {
		errs = append(errs, validateRoutePath(prefix, p.Child("prefix"))...)
		errs = append(errs, validateReservedRoute(prefix, true, p.Child("prefix"))...)
	}
	if s.Method != "" && !validMethod(strings.ToUpper(s.Method)) {
		errs = append(errs, field.NotSupported(p.Child("method"), s.Method, httpMethods))
	}
	for i, m := range s.Methods {
		if !validMethod(m) {
			errs = append(errs, field.NotSupported(p.Child("methods").Index(i), m, httpMethods))
		}
	}
	if s.Host != "" {
		errs = append(errs, validateHost(s.Host, p.Child("host"))...)
	}
	errs = append(errs, validateFunctionReference(&s.FunctionReference, p.Child("functionref"), true)...)
	return errs
}

// validateRoutePath checks a gorilla/mux style path: it starts with "/"
// and its {name} or {name:regexp} variables are well formed.
func validateRoutePath(path string, p *field.Path) field.ErrorList {
	if !strings.HasPrefix(path, "/") {
		return field.ErrorList{field.Invalid(p, path, `must start with "/"`)}
	}
	var errs field.ErrorList
	for _, msg := range routeVariableErrors(path) {
		errs = append(errs, field.Invalid(p, path, msg))
	}
	return errs
}

var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// routeVariableErrors scans path for {…} variables. Braces nest inside a
// variable's regexp (as in {id:[0-9]{3}}), as gorilla/mux allows.
func routeVariableErrors(path string) []string {
	var msgs []string
	seen := map[string]bool{}
	depth, start := 0, 0
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '{':
			if depth == 0 {
				start = i
			}
			depth++
		case '}':
			if depth == 0 {
				return append(msgs, fmt.Sprintf("unbalanced braces: unexpected '}' at offset %d", i))
			}
			depth--
			if depth > 0 {
				continue
			}
			name, pattern, hasPattern := strings.Cut(path[start+1:i], ":")
			if !paramName.MatchString(name) {
				msgs = append(msgs, fmt.Sprintf("parameter name %q must match [A-Za-z_][A-Za-z0-9_]*", name))
			} else if seen[name] {
				msgs = append(msgs, fmt.Sprintf("parameter %q appears twice", name))
			}
			seen[name] = true
			if hasPattern {
				if pattern == "" {
					msgs = append(msgs, fmt.Sprintf("parameter %q has an empty pattern", name))
				} else if _, err := regexp.Compile(pattern); err != nil {
					msgs = append(msgs, fmt.Sprintf("parameter %q: bad pattern: %v", name, err))
				}
			}
		}
	}
	if depth != 0 {
		msgs = append(msgs, fmt.Sprintf("unbalanced braces: '{' at offset %d is never closed", start))
	}
	return msgs
}

// validateHost accepts a host name (DNS-1123 subdomain, any case, with an
// optional "*." wildcard first label) or an IP, optionally with a port.
func validateHost(host string, p *field.Path) field.ErrorList {
	h := host
	if hh, port, err := net.SplitHostPort(host); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return field.ErrorList{field.Invalid(p, host, "port must be 1..65535")}
		}
		h = hh
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	h = strings.TrimPrefix(strings.ToLower(h), "*.")
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(h) {
		errs = append(errs, field.Invalid(p, host, msg))
	}
	return errs
}

func validateFunctionReference(r *FunctionReference, p *field.Path, allowWeights bool) field.ErrorList {
	var errs field.ErrorList
	switch r.Type {
	case FunctionReferenceTypeFunctionName:
		errs = append(errs, validateName(r.Name, p.Child("name"))...)
	case FunctionReferenceTypeFunctionWeights:
		if !allowWeights {
			errs = append(errs, field.NotSupported(p.Child("type"), r.Type, []FunctionReferenceType{FunctionReferenceTypeFunctionName}))
			break
		}
		wp := p.Child("functionweights")
		if len(r.FunctionWeights) == 0 {
			errs = append(errs, field.Required(wp, "function-weights needs at least one function"))
			break
		}
		sum := 0
		for _, name := range slices.Sorted(maps.Keys(r.FunctionWeights)) {
			w := r.FunctionWeights[name]
			errs = append(errs, validateName(name, wp.Key(name))...)
			if w < 0 || w > 100 {
				errs = append(errs, field.Invalid(wp.Key(name), w, "weight must be between 0 and 100"))
			}
			sum += w
		}
		if sum != 100 {
			errs = append(errs, field.Invalid(wp, sum, "weights must sum to 100"))
		}
	default:
		valid := []FunctionReferenceType{FunctionReferenceTypeFunctionName}
		if allowWeights {
			valid = append(valid, FunctionReferenceTypeFunctionWeights)
		}
		errs = append(errs, field.NotSupported(p.Child("type"), r.Type, valid))
	}
	return errs
}

// --- TimeTrigger ---

// CronParser parses TimeTrigger schedules: five fields, an optional
// leading seconds field, and descriptors such as @hourly and @every 5s.
// The timer uses the same parser, so what validates also runs.
var CronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func validateTimeTriggerSpec(s *TimeTriggerSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if strings.TrimSpace(s.Cron) == "" {
		errs = append(errs, field.Required(p.Child("cron"), `a cron schedule such as "*/5 * * * *", "0 */5 * * * *" or "@every 5s"`))
	} else if _, err := CronParser.Parse(s.Cron); err != nil {
		errs = append(errs, field.Invalid(p.Child("cron"), s.Cron, err.Error()))
	}
	errs = append(errs, validateFunctionReference(&s.FunctionReference, p.Child("functionref"), false)...)
	if s.Method != "" && !validMethod(strings.ToUpper(s.Method)) {
		errs = append(errs, field.NotSupported(p.Child("method"), s.Method, httpMethods))
	}
	if s.Subpath != "" && !strings.HasPrefix(s.Subpath, "/") {
		errs = append(errs, field.Invalid(p.Child("subpath"), s.Subpath, `must start with "/"`))
	}
	return errs
}
