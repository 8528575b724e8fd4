package v1

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Object is any Isotope resource: Kubernetes object metadata plus a deep
// copy. It is the same contract as controller-runtime's client.Object, so
// a store over the kube-apiserver takes these types unchanged.
// +kubebuilder:object:generate=false
type Object interface {
	metav1.Object
	runtime.Object
}

// KindInfo describes one resource kind.
// +kubebuilder:object:generate=false
type KindInfo struct {
	Kind     string // Environment
	Plural   string // environments (URL path segment, CRD plural)
	Singular string // environment
	// Aliases are the CLI and URL names also accepted (env, fn, pkg …).
	Aliases []string
	// HasStatus reports whether the kind has a status written separately
	// from its spec (a status subresource).
	HasStatus bool
	// Core marks the kinds that are core/v1 objects on Kubernetes
	// (Secret, ConfigMap): they have no CRD.
	Core bool
	New  func() Object
}

var kinds = []KindInfo{
	{Kind: KindSecret, Plural: "secrets", Singular: "secret", Core: true, New: func() Object { return &Secret{} }},
	{Kind: KindConfigMap, Plural: "configmaps", Singular: "configmap", Aliases: []string{"cm"}, Core: true, New: func() Object { return &ConfigMap{} }},
	{Kind: KindEnvironment, Plural: "environments", Singular: "environment", Aliases: []string{"env", "envs"}, New: func() Object { return &Environment{} }},
	{Kind: KindPackage, Plural: "packages", Singular: "package", Aliases: []string{"pkg", "pkgs"}, HasStatus: true, New: func() Object { return &Package{} }},
	{Kind: KindFunction, Plural: "functions", Singular: "function", Aliases: []string{"fn", "fns"}, HasStatus: true, New: func() Object { return &Function{} }},
	{Kind: KindHTTPTrigger, Plural: "httptriggers", Singular: "httptrigger", Aliases: []string{"ht", "route", "routes"}, New: func() Object { return &HTTPTrigger{} }},
	{Kind: KindTimeTrigger, Plural: "timetriggers", Singular: "timetrigger", Aliases: []string{"tt", "timer", "timers"}, New: func() Object { return &TimeTrigger{} }},
	{Kind: KindMessageQueueTrigger, Plural: "messagequeuetriggers", Singular: "messagequeuetrigger", Aliases: []string{"mqt", "mqtrigger", "mqtriggers"}, New: func() Object { return &MessageQueueTrigger{} }},
	{Kind: KindCanaryConfig, Plural: "canaryconfigs", Singular: "canaryconfig", Aliases: []string{"canary", "canary-config"}, HasStatus: true, New: func() Object { return &CanaryConfig{} }},
}

// Kinds returns every kind, in dependency order (secrets, config maps
// and environments first, so applying in this order satisfies
// references).
func Kinds() []KindInfo { return append([]KindInfo(nil), kinds...) }

// LookupKind finds a kind by its Kind, plural, singular or alias name,
// case-insensitively.
func LookupKind(name string) (KindInfo, error) {
	n := strings.ToLower(name)
	for _, k := range kinds {
		if n == strings.ToLower(k.Kind) || n == k.Plural || n == k.Singular {
			return k, nil
		}
		for _, a := range k.Aliases {
			if n == a {
				return k, nil
			}
		}
	}
	names := make([]string, 0, len(kinds))
	for _, k := range kinds {
		names = append(names, k.Kind)
	}
	sort.Strings(names)
	return KindInfo{}, fmt.Errorf("unknown kind %q (known: %s)", name, strings.Join(names, ", "))
}

// KindOf returns the Kind name of a typed object.
func KindOf(obj Object) string {
	switch obj.(type) {
	case *Environment:
		return KindEnvironment
	case *Package:
		return KindPackage
	case *Function:
		return KindFunction
	case *HTTPTrigger:
		return KindHTTPTrigger
	case *TimeTrigger:
		return KindTimeTrigger
	case *Secret:
		return KindSecret
	case *ConfigMap:
		return KindConfigMap
	case *CanaryConfig:
		return KindCanaryConfig
	case *MessageQueueTrigger:
		return KindMessageQueueTrigger
	}
	return ""
}

// SetTypeMeta fills apiVersion and kind from the object's Go type.
func SetTypeMeta(obj Object) {
	obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: Group, Version: Version, Kind: KindOf(obj)})
}

// SchemeGroupVersion is group version used to register these objects.
var SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// AddToScheme registers every kind with a runtime.Scheme (used by the
// Kubernetes store and controllers).
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion,
		&Environment{}, &EnvironmentList{},
		&Package{}, &PackageList{},
		&Function{}, &FunctionList{},
		&HTTPTrigger{}, &HTTPTriggerList{},
		&TimeTrigger{}, &TimeTriggerList{},
		&MessageQueueTrigger{}, &MessageQueueTriggerList{},
		&CanaryConfig{}, &CanaryConfigList{},
	)
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}

// FissionOnlyKind is a fission.io/v1 kind Isotope does not implement.
// +kubebuilder:object:generate=false
type FissionOnlyKind struct {
	Kind, Plural, Singular string
	Why                    string // what is missing, for messages
}

// FissionOnlyKinds are Fission's kinds without an Isotope equivalent.
// The API lists them as empty on fission.io/v1 (Fission's spec apply
// lists every kind before it writes) and refuses writes; the migration
// names and skips them.
var FissionOnlyKinds = []FissionOnlyKind{
	{Kind: "KubernetesWatchTrigger", Plural: "kuberneteswatchtriggers", Singular: "kuberneteswatchtrigger", Why: "Kubernetes watch triggers are not implemented"},
}
