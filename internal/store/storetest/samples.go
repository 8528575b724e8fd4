// Package storetest is a conformance suite for store.Store
// implementations, and the sample objects it uses. Each implementation
// (bbolt, the HTTP client against the API server, later Kubernetes) runs
// the same Run so that they behave alike.
package storetest

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
)

// Samples returns one valid object of every kind with a CRD, in
// v1.Kinds order, in
// namespace ns; they reference each other (function → package →
// environment) by name. The trigger's route includes ns, so samples in
// several namespaces do not collide (stores refuse duplicate routes).
func Samples(ns string) []v1.Object {
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "hello"}}
	}
	return []v1.Object{
		&v1.Environment{ObjectMeta: meta("go"), Spec: v1.EnvironmentSpec{
			Version: 2,
			Runtime: v1.Runtime{Image: "isotope/wasm-env"},
			Builder: v1.Builder{Image: "isotope/go-wasm-builder", Command: "build"},
		}},
		&v1.Package{ObjectMeta: meta("hello-pkg"), Spec: v1.PackageSpec{
			Environment: v1.EnvironmentReference{Name: "go"},
			Deployment:  v1.Archive{Literal: []byte("\x00asm\x01\x00\x00\x00")},
		}},
		&v1.Function{ObjectMeta: meta("hello"), Spec: v1.FunctionSpec{
			Environment: v1.EnvironmentReference{Name: "go"},
			Package:     v1.FunctionPackageRef{PackageRef: v1.PackageRef{Name: "hello-pkg"}, FunctionName: "Handler"},
		}},
		&v1.HTTPTrigger{ObjectMeta: meta("hello-route"), Spec: v1.HTTPTriggerSpec{
			RelativeURL:       routeFor(ns, "hello"),
			Methods:           []string{"GET"},
			FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: "hello"},
		}},
		&v1.TimeTrigger{ObjectMeta: meta("tick"), Spec: v1.TimeTriggerSpec{
			Cron:              "@every 1m",
			FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: "hello"},
		}},
		&v1.CanaryConfig{ObjectMeta: meta("hello-canary"), Spec: v1.CanaryConfigSpec{
			Trigger: "hello-route", NewFunction: "hello", OldFunction: "hello-old",
			WeightIncrement: 20, WeightIncrementDuration: "1m", FailureThreshold: 10,
		}},
		&v1.MessageQueueTrigger{ObjectMeta: meta("orders"), Spec: v1.MessageQueueTriggerSpec{
			FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: "hello"},
			MessageQueueType:  v1.MessageQueueTypeNATSJetStream,
			Topic:             "orders.created",
			ResponseTopic:     "orders.done",
			MaxRetries:        3,
			Metadata:          map[string]string{"stream": "orders"},
		}},
	}
}

// CoreSamples are samples of the kinds that are core/v1 objects on
// Kubernetes (v1.KindInfo.Core): Samples leaves them out, so that the
// suite runs alike on stores that do not keep them.
func CoreSamples(ns string) []v1.Object {
	meta := metav1.ObjectMeta{Name: "hello-config", Namespace: ns, Labels: map[string]string{"app": "hello"}}
	return []v1.Object{
		&v1.Secret{ObjectMeta: meta, Data: map[string][]byte{"password": []byte("pw")}},
		&v1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"mode": "fast"}},
	}
}

// routeFor is a sample trigger's relativeurl, unique per namespace and
// name.
func routeFor(ns, name string) string {
	if ns == "" {
		return "/" + name
	}
	return "/" + ns + "/" + name
}

// Sample returns the sample of one kind, named name, in namespace ns. A
// trigger's route is unique to its namespace and name.
func Sample(kind, ns, name string) v1.Object {
	for _, o := range append(Samples(ns), CoreSamples(ns)...) {
		if v1.KindOf(o) == kind {
			o.SetName(name)
			if tr, ok := o.(*v1.HTTPTrigger); ok {
				tr.Spec.RelativeURL = routeFor(ns, name)
			}
			return o
		}
	}
	panic("storetest: no sample of kind " + kind)
}

// ChangeSpec makes a valid change to obj's spec; n makes it distinct
// from other changes.
func ChangeSpec(obj v1.Object, n int) {
	switch o := obj.(type) {
	case *v1.Environment:
		o.Spec.Runtime.Image = fmt.Sprintf("isotope/wasm-env:%d", n)
	case *v1.Package:
		o.Spec.BuildCommand = fmt.Sprintf("build-%d", n)
	case *v1.Function:
		o.Spec.FunctionTimeout = 10 + n
	case *v1.HTTPTrigger:
		o.Spec.RelativeURL = fmt.Sprintf("%s/%d", routeFor(o.Namespace, o.Name), n)
	case *v1.TimeTrigger:
		o.Spec.Cron = fmt.Sprintf("@every %ds", 1+n)
	case *v1.CanaryConfig:
		o.Spec.WeightIncrement = 1 + n%100
	case *v1.Secret:
		o.Data = map[string][]byte{"n": []byte(fmt.Sprint(n))}
	case *v1.ConfigMap:
		o.Data = map[string]string{"n": fmt.Sprint(n)}
	case *v1.MessageQueueTrigger:
		o.Spec.ContentType = fmt.Sprintf("application/x-change-%d", n)
	default:
		panic(fmt.Sprintf("storetest: cannot change %T", obj))
	}
}
