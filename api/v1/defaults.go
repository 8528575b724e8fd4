package v1

import "strings"

// Defaults Isotope fills in, matching Fission's CLI flag defaults and its
// mutating webhook (reference/fission.md §2, §6).
const (
	DefaultPoolsize               = 3
	DefaultTerminationGracePeriod = 90
	DefaultTargetCPUPercent       = 80
	DefaultSpecializationTimeout  = 120
	DefaultFunctionTimeout        = 60
	DefaultIdleTimeout            = 120
	DefaultConcurrency            = 500
	DefaultRequestsPerPod         = 1
)

// Default fills unset fields the way Fission's mutating webhook and CLI
// do: namespace "default", references in the object's namespace,
// executor type poolmgr, function timeout 60 s, and so on. It is
// idempotent: Default(Default(x)) == Default(x). It never overrides a
// value that is set, so validation still sees what the user wrote.
func Default(obj Object) {
	if obj.GetNamespace() == "" {
		obj.SetNamespace(DefaultNamespace)
	}
	switch o := obj.(type) {
	case *Environment:
		defaultEnvironment(o)
	case *Package:
		defaultPackage(o)
	case *Function:
		defaultFunction(o)
	case *HTTPTrigger:
		defaultHTTPTrigger(o)
	case *TimeTrigger:
		defaultFunctionReference(&o.Spec.FunctionReference)
	case *MessageQueueTrigger:
		defaultMessageQueueTrigger(o)
	case *CanaryConfig:
		defaultCanaryConfig(o)
	}
}

func defaultEnvironment(e *Environment) {
	s := &e.Spec
	// Below version 3 the pool is fixed at 3 and poolsize is ignored, so
	// only version-3 environments get the field filled in.
	if s.Poolsize == 0 && s.Version >= 3 {
		s.Poolsize = DefaultPoolsize
	}
	if s.AllowedFunctionsPerContainer == "" {
		s.AllowedFunctionsPerContainer = AllowedFunctionsPerContainerSingle
	}
	// Fission's CRD on main defaults this to 90. Earlier releases left an
	// unset field at 0, which killed runtime pods instantly (no preStop
	// drain) unless the CLI's --graceperiod default happened to be used
	// (reference/fission.md §2.2). Negative values are left for
	// validation to refuse.
	if s.TerminationGracePeriod == 0 {
		s.TerminationGracePeriod = DefaultTerminationGracePeriod
	}
}

func defaultPackage(p *Package) {
	if p.Spec.Environment.Namespace == "" {
		p.Spec.Environment.Namespace = p.Namespace
	}
	defaultArchive(&p.Spec.Source)
	defaultArchive(&p.Spec.Deployment)
	if p.Status.BuildStatus == "" {
		switch {
		case !p.Spec.Deployment.IsEmpty():
			p.Status.BuildStatus = BuildStatusNone
		case !p.Spec.Source.IsEmpty():
			p.Status.BuildStatus = BuildStatusPending
		default:
			p.Status.BuildStatus = BuildStatusFailed
			if p.Status.BuildLog == "" {
				p.Status.BuildLog = "Both source and deployment archives are empty: the package has nothing to build or run."
			}
		}
	}
}

// defaultArchive infers an archive's type from what it holds and names
// the checksum algorithm when only a sum is given.
func defaultArchive(a *Archive) {
	if a.Type == "" {
		switch {
		case len(a.Literal) > 0:
			a.Type = ArchiveTypeLiteral
		case a.URL != "":
			a.Type = ArchiveTypeURL
		}
	}
	if a.Checksum.Type == "" && a.Checksum.Sum != "" {
		a.Checksum.Type = ChecksumTypeSHA256
	}
}

func defaultFunction(f *Function) {
	s := &f.Spec
	ns := f.Namespace
	if s.Environment.Namespace == "" {
		s.Environment.Namespace = ns
	}
	if s.Package.PackageRef.Namespace == "" {
		s.Package.PackageRef.Namespace = ns
	}
	for i := range s.Secrets {
		if s.Secrets[i].Namespace == "" {
			s.Secrets[i].Namespace = ns
		}
	}
	for i := range s.ConfigMaps {
		if s.ConfigMaps[i].Namespace == "" {
			s.ConfigMaps[i].Namespace = ns
		}
	}
	if s.InvokeStrategy.StrategyType == "" {
		s.InvokeStrategy.StrategyType = StrategyTypeExecution
	}
	es := &s.InvokeStrategy.ExecutionStrategy
	if es.ExecutorType == "" {
		es.ExecutorType = ExecutorTypePoolmgr
	}
	if es.ExecutorType == ExecutorTypeNewdeploy {
		// MinScale 0 is meaningful (scale to zero), so only MaxScale is
		// filled: at least one instance, never below MinScale.
		if es.MaxScale == 0 {
			es.MaxScale = max(es.MinScale, 1)
		}
		if es.TargetCPUPercent == 0 {
			es.TargetCPUPercent = DefaultTargetCPUPercent
		}
	}
	if es.SpecializationTimeout == 0 {
		es.SpecializationTimeout = DefaultSpecializationTimeout
	}
	if s.FunctionTimeout == 0 {
		s.FunctionTimeout = DefaultFunctionTimeout
	}
	if s.IdleTimeout == nil {
		t := DefaultIdleTimeout
		s.IdleTimeout = &t
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.RequestsPerPod == 0 {
		s.RequestsPerPod = DefaultRequestsPerPod
	}
}

// defaultHTTPTrigger merges Fission's legacy single method into the
// methods list (upper-cased, without duplicates, first-seen order) and
// falls back to GET. The legacy field is kept as written so that a
// Fission reader of the object sees what it expects.
func defaultHTTPTrigger(t *HTTPTrigger) {
	s := &t.Spec
	var methods []string
	seen := map[string]bool{}
	add := func(m string) {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" || seen[m] {
			return
		}
		seen[m] = true
		methods = append(methods, m)
	}
	add(s.Method)
	for _, m := range s.Methods {
		add(m)
	}
	if len(methods) == 0 {
		methods = []string{"GET"}
	}
	s.Methods = methods
	defaultFunctionReference(&s.FunctionReference)
}

func defaultFunctionReference(r *FunctionReference) {
	if r.Type == "" {
		r.Type = FunctionReferenceTypeFunctionName
	}
}
