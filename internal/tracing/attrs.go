package tracing

import (
	"go.opentelemetry.io/otel/attribute"
)

// Attribute keys of Isotope's spans. FaaS and HTTP facts use the
// OpenTelemetry semantic conventions' names; Isotope's own objects are
// under isotope.*.
const (
	KeyFunctionName      = attribute.Key("faas.name")
	KeyColdStart         = attribute.Key("faas.coldstart")
	KeyTrigger           = attribute.Key("faas.trigger")
	KeyFunctionNamespace = attribute.Key("isotope.function.namespace")
	KeyExecutorType      = attribute.Key("isotope.executor.type")
	KeyRuntime           = attribute.Key("isotope.runtime")
	KeyEnvironment       = attribute.Key("isotope.environment")
	KeyPackageName       = attribute.Key("isotope.package.name")
	KeyPackageNamespace  = attribute.Key("isotope.package.namespace")
	KeyBuildStatus       = attribute.Key("isotope.build.status")
	KeyArchiveID         = attribute.Key("isotope.archive.id")
	KeyArchiveSize       = attribute.Key("isotope.archive.size")
	KeyFetchType         = attribute.Key("isotope.fetch.type")

	KeyHTTPMethod     = attribute.Key("http.request.method")
	KeyHTTPRoute      = attribute.Key("http.route")
	KeyHTTPStatus     = attribute.Key("http.response.status_code")
	KeyURLPath        = attribute.Key("url.path")
	KeyServerAddress  = attribute.Key("server.address")
	KeyUserAgent      = attribute.Key("user_agent.original")
	KeyRequestBodyLen = attribute.Key("http.request.body.size")
)

// Function is the pair of attributes naming a function.
func Function(namespace, name string) []attribute.KeyValue {
	return []attribute.KeyValue{KeyFunctionNamespace.String(namespace), KeyFunctionName.String(name)}
}

// Package is the pair of attributes naming a package.
func Package(namespace, name string) []attribute.KeyValue {
	return []attribute.KeyValue{KeyPackageNamespace.String(namespace), KeyPackageName.String(name)}
}
