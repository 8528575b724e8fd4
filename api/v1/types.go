package v1

import (
	asv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group, version and the apiVersion strings Isotope reads and writes.
const (
	Group             = "isotope.dev"
	Version           = "v1"
	APIVersion        = Group + "/" + Version
	FissionGroup      = "fission.io"
	FissionAPIVersion = FissionGroup + "/" + Version
)

// Kinds of resource.
const (
	KindEnvironment = "Environment"
	KindPackage     = "Package"
	KindFunction    = "Function"
	KindHTTPTrigger = "HTTPTrigger"
	KindTimeTrigger = "TimeTrigger"
)

// ArchiveLiteralSizeLimit is the largest archive kept inline in a Package
// (Fission's limit); larger archives go to the storage service.
const ArchiveLiteralSizeLimit = 256 * 1024

// DefaultNamespace is the namespace of objects created without one.
const DefaultNamespace = "default"

// ArchiveType says where an Archive's bytes are.
type ArchiveType string

const (
	ArchiveTypeLiteral ArchiveType = "literal"
	ArchiveTypeURL     ArchiveType = "url"
)

// ChecksumType names a checksum algorithm; only sha256 exists.
type ChecksumType string

const ChecksumTypeSHA256 ChecksumType = "sha256"

// Checksum of an archive: lowercase hex sha256 of its bytes.
type Checksum struct {
	Type ChecksumType `json:"type,omitempty"`
	Sum  string       `json:"sum,omitempty"`
}

// Archive is a zip (or single file) either inline or at a URL.
type Archive struct {
	// +kubebuilder:validation:Enum=literal;url;""
	Type ArchiveType `json:"type,omitempty"`
	// Literal holds the archive's bytes when it is at most 256 KiB.
	Literal []byte `json:"literal,omitempty"`
	URL     string `json:"url,omitempty"`
	// +optional
	Checksum Checksum `json:"checksum,omitempty"`
}

// IsEmpty reports whether the archive names no bytes at all.
func (a Archive) IsEmpty() bool { return len(a.Literal) == 0 && a.URL == "" }

// EnvironmentReference names an Environment.
type EnvironmentReference struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// SecretReference names a Secret.
type SecretReference struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// ConfigMapReference names a ConfigMap.
type ConfigMapReference struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// PackageRef names a Package; ResourceVersion is bumped by the builder
// manager when the package is rebuilt so that executors refresh.
type PackageRef struct {
	Namespace       string `json:"namespace"`
	Name            string `json:"name"`
	ResourceVersion string `json:"resourceversion,omitempty"`
}

// FunctionPackageRef is a function's package and entry point.
type FunctionPackageRef struct {
	PackageRef   PackageRef `json:"packageref"`
	FunctionName string     `json:"functionName,omitempty"`
}

// BuildStatus is a Package's build state.
type BuildStatus string

const (
	BuildStatusPending   BuildStatus = "pending"
	BuildStatusRunning   BuildStatus = "running"
	BuildStatusSucceeded BuildStatus = "succeeded"
	BuildStatusFailed    BuildStatus = "failed"
	BuildStatusNone      BuildStatus = "none"
)

// AllowedFunctionsPerContainer says whether a runtime instance serves one
// function or many.
type AllowedFunctionsPerContainer string

const (
	AllowedFunctionsPerContainerSingle   AllowedFunctionsPerContainer = "single"
	AllowedFunctionsPerContainerInfinite AllowedFunctionsPerContainer = "infinite"
)

// ExecutorType is a provisioning strategy.
type ExecutorType string

const (
	ExecutorTypePoolmgr   ExecutorType = "poolmgr"
	ExecutorTypeNewdeploy ExecutorType = "newdeploy"
	ExecutorTypeContainer ExecutorType = "container"
)

// StrategyType is the kind of invoke strategy; only "execution" exists.
type StrategyType string

const StrategyTypeExecution StrategyType = "execution"

// FunctionReferenceType says how an HTTPTrigger picks its function.
type FunctionReferenceType string

const (
	FunctionReferenceTypeFunctionName    FunctionReferenceType = "name"
	FunctionReferenceTypeFunctionWeights FunctionReferenceType = "function-weights"
)

// Runtime is the image (or, embedded, the local command) that runs
// functions of an environment.
type Runtime struct {
	Image string `json:"image,omitempty"`
	// Container is merged over the generated runtime container. In
	// embedded mode its command and args name the local program to run.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Container *corev1.Container `json:"container,omitempty"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	PodSpec *corev1.PodSpec `json:"podspec,omitempty"`
}

// Builder is the image (or local command) that turns source archives into
// deploy archives.
type Builder struct {
	Image string `json:"image,omitempty"`
	// Command is the default build command.
	Command string `json:"command,omitempty"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Container *corev1.Container `json:"container,omitempty"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	PodSpec *corev1.PodSpec `json:"podspec,omitempty"`
}

// EnvironmentSpec is Fission's environment spec.
type EnvironmentSpec struct {
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3
	Version int     `json:"version"`
	Runtime Runtime `json:"runtime"`
	// +optional
	Builder Builder `json:"builder,omitempty"`
	// +optional
	AllowedFunctionsPerContainer AllowedFunctionsPerContainer `json:"allowedFunctionsPerContainer,omitempty"`
	// +optional
	AllowAccessToExternalNetwork bool `json:"allowAccessToExternalNetwork,omitempty"`
	// +optional
	Resources corev1.ResourceRequirements `json:"resources"`
	// +optional
	Poolsize int `json:"poolsize,omitempty"`
	// +optional
	TerminationGracePeriod int64 `json:"terminationGracePeriod,omitempty"`
	// +optional
	KeepArchive bool `json:"keeparchive"`
	// +optional
	ImagePullSecret string `json:"imagepullsecret"`
}

// Environment is a language runtime (and optionally a builder).
// +genclient
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=env,categories=isotope
// +kubebuilder:printcolumn:name="Version",type=integer,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.runtime.image`
// +kubebuilder:printcolumn:name="Builder",type=string,JSONPath=`.spec.builder.image`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Environment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              EnvironmentSpec `json:"spec"`
}

// EnvironmentList is a list of Environments.
// +kubebuilder:object:root=true
type EnvironmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Environment `json:"items"`
}

// PackageSpec is Fission's package spec.
type PackageSpec struct {
	Environment EnvironmentReference `json:"environment"`
	// +optional
	Source Archive `json:"source,omitempty"`
	// +optional
	Deployment Archive `json:"deployment,omitempty"`
	// +optional
	BuildCommand string `json:"buildcmd,omitempty"`
}

// PackageStatus is a package's build state and log.
type PackageStatus struct {
	// +kubebuilder:validation:Enum=pending;running;succeeded;failed;none;""
	BuildStatus BuildStatus `json:"buildstatus,omitempty"`
	BuildLog    string      `json:"buildlog,omitempty"`
	// +optional
	LastUpdateTimestamp metav1.Time `json:"lastUpdateTimestamp,omitempty"`
}

// Package is a function's source and/or deployment archive.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=pkg,categories=isotope
// +kubebuilder:printcolumn:name="Environment",type=string,JSONPath=`.spec.environment.name`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.buildstatus`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Package struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              PackageSpec `json:"spec"`
	// +optional
	Status PackageStatus `json:"status,omitempty"`
}

// PackageList is a list of Packages.
// +kubebuilder:object:root=true
type PackageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Package `json:"items"`
}

// ExecutionStrategy says how instances of a function are provisioned.
type ExecutionStrategy struct {
	// +kubebuilder:validation:Enum=poolmgr;newdeploy;container;""
	ExecutorType          ExecutorType `json:"ExecutorType,omitempty"`
	MinScale              int          `json:"MinScale,omitempty"`
	MaxScale              int          `json:"MaxScale,omitempty"`
	TargetCPUPercent      int          `json:"TargetCPUPercent,omitempty"`
	SpecializationTimeout int          `json:"SpecializationTimeout,omitempty"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	HpaMetrics []asv2.MetricSpec `json:"hpaMetrics,omitempty"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	HpaBehavior *asv2.HorizontalPodAutoscalerBehavior `json:"hpaBehavior,omitempty"`
}

// InvokeStrategy wraps the execution strategy.
type InvokeStrategy struct {
	// +optional
	ExecutionStrategy ExecutionStrategy `json:"ExecutionStrategy,omitempty"`
	// +optional
	StrategyType StrategyType `json:"StrategyType,omitempty"`
}

// FunctionSpec is Fission's function spec.
type FunctionSpec struct {
	Environment EnvironmentReference `json:"environment"`
	Package     FunctionPackageRef   `json:"package"`
	// +optional
	Secrets []SecretReference `json:"secrets,omitempty"`
	// +optional
	ConfigMaps []ConfigMapReference `json:"configmaps,omitempty"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Resources      corev1.ResourceRequirements `json:"resources,omitempty"`
	InvokeStrategy InvokeStrategy              `json:"InvokeStrategy"`
	// FunctionTimeout is the per-request deadline in seconds.
	// +optional
	FunctionTimeout int `json:"functionTimeout,omitempty"`
	// IdleTimeout is how long, in seconds, an idle instance is kept.
	// +optional
	IdleTimeout *int `json:"idletimeout,omitempty"`
	// +optional
	Concurrency int `json:"concurrency,omitempty"`
	// +optional
	RequestsPerPod int `json:"requestsPerPod,omitempty"`
	// +optional
	OnceOnly bool `json:"onceOnly,omitempty"`
	// +optional
	RetainPods int `json:"retainPods,omitempty"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	PodSpec *corev1.PodSpec `json:"podspec,omitempty"`
}

// FunctionStatus is empty, as in Fission; it exists for the status
// subresource.
type FunctionStatus struct{}

// Function is a unit of code served by the router.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=fn,categories=isotope
// +kubebuilder:printcolumn:name="Environment",type=string,JSONPath=`.spec.environment.name`
// +kubebuilder:printcolumn:name="Package",type=string,JSONPath=`.spec.package.packageref.name`
// +kubebuilder:printcolumn:name="Executor",type=string,JSONPath=`.spec.InvokeStrategy.ExecutionStrategy.ExecutorType`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Function struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              FunctionSpec `json:"spec"`
	// +optional
	Status FunctionStatus `json:"status,omitempty"`
}

// FunctionList is a list of Functions.
// +kubebuilder:object:root=true
type FunctionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Function `json:"items"`
}

// FunctionReference is how a trigger names its function(s).
type FunctionReference struct {
	// +kubebuilder:validation:Enum=name;function-weights
	Type FunctionReferenceType `json:"type"`
	// +optional
	Name string `json:"name"`
	// +optional
	FunctionWeights map[string]int `json:"functionweights"`
}

// IngressConfig is kept for Fission compatibility.
type IngressConfig struct {
	// +optional
	Annotations map[string]string `json:"annotations"`
	// +optional
	Path string `json:"path"`
	// +optional
	Host string `json:"host"`
	// +optional
	TLS string `json:"tls"`
}

// HTTPTriggerSpec maps an HTTP route to a function.
type HTTPTriggerSpec struct {
	// +optional
	Host string `json:"host"`
	// +optional
	RelativeURL string `json:"relativeurl,omitempty"`
	// +optional
	Prefix *string `json:"prefix,omitempty"`
	// +optional
	KeepPrefix bool `json:"keepPrefix,omitempty"`
	// Method is Fission's legacy single method; it is merged with Methods.
	// +optional
	Method string `json:"method,omitempty"`
	// +optional
	Methods           []string          `json:"methods,omitempty"`
	FunctionReference FunctionReference `json:"functionref"`
	// +optional
	CreateIngress bool `json:"createingress"`
	// +optional
	IngressConfig IngressConfig `json:"ingressconfig"`
}

// HTTPTrigger routes HTTP requests to a function.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,categories=isotope
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.relativeurl`
// +kubebuilder:printcolumn:name="Prefix",type=string,JSONPath=`.spec.prefix`
// +kubebuilder:printcolumn:name="Function",type=string,JSONPath=`.spec.functionref.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type HTTPTrigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HTTPTriggerSpec `json:"spec"`
}

// HTTPTriggerList is a list of HTTPTriggers.
// +kubebuilder:object:root=true
type HTTPTriggerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HTTPTrigger `json:"items"`
}

// TimeTriggerSpec calls a function on a cron schedule.
type TimeTriggerSpec struct {
	Cron              string `json:"cron"`
	FunctionReference `json:"functionref"`
	// +optional
	Method string `json:"method,omitempty"`
	// +optional
	Subpath string `json:"subpath,omitempty"`
}

// TimeTrigger calls a function on a schedule.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,categories=isotope
// +kubebuilder:printcolumn:name="Cron",type=string,JSONPath=`.spec.cron`
// +kubebuilder:printcolumn:name="Function",type=string,JSONPath=`.spec.functionref.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TimeTrigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TimeTriggerSpec `json:"spec"`
}

// TimeTriggerList is a list of TimeTriggers.
// +kubebuilder:object:root=true
type TimeTriggerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TimeTrigger `json:"items"`
}
