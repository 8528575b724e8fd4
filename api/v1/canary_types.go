package v1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// KindCanaryConfig is the kind of canary releases.
const KindCanaryConfig = "CanaryConfig"

// FailureType is what counts as a failed request of a canary's new
// function; Fission knows only status codes.
type FailureType string

// FailureTypeStatusCode counts requests answered 5xx (and the router's
// 429 and 499) as failures.
const FailureTypeStatusCode FailureType = "status-code"

// CanaryStatus is a canary release's state.
type CanaryStatus string

const (
	CanaryStatusPending   CanaryStatus = "pending"
	CanaryStatusSucceeded CanaryStatus = "succeeded"
	CanaryStatusFailed    CanaryStatus = "failed"
	CanaryStatusAborted   CanaryStatus = "aborted"
)

// Defaults of a CanaryConfig, Fission's CLI defaults.
const (
	DefaultCanaryWeightIncrement  = 20
	DefaultCanaryDuration         = "2m"
	DefaultCanaryFailureThreshold = 10
)

// CanaryConfigSpec is Fission's canary config: every duration the
// trigger's weight of newfunction grows by weightincrement while the
// failure percentage of newfunction over that interval stays at or under
// failurethreshold; past it, all traffic goes back to oldfunction.
type CanaryConfigSpec struct {
	// Trigger is the HTTPTrigger whose function weights are moved.
	Trigger     string `json:"trigger"`
	NewFunction string `json:"newfunction"`
	OldFunction string `json:"oldfunction"`
	// WeightIncrement is the percentage moved per step (1..100).
	WeightIncrement int `json:"weightincrement"`
	// WeightIncrementDuration is the interval between steps, a Go
	// duration ("2m", "500ms").
	WeightIncrementDuration string `json:"duration"`
	// FailureThreshold is the largest failure percentage (0..100) of
	// newfunction's requests in one interval that still lets it advance.
	FailureThreshold int `json:"failurethreshold"`
	// +kubebuilder:validation:Enum=status-code;""
	FailureType FailureType `json:"failureType"`
}

// CanaryConfigStatus is where a canary release stands.
type CanaryConfigStatus struct {
	// +kubebuilder:validation:Enum=pending;succeeded;failed;aborted;""
	Status CanaryStatus `json:"status"`
}

// CanaryConfig shifts an HTTPTrigger's traffic from one function to
// another step by step, rolling back when the new one fails.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=isotope
// +kubebuilder:printcolumn:name="Trigger",type=string,JSONPath=`.spec.trigger`
// +kubebuilder:printcolumn:name="New",type=string,JSONPath=`.spec.newfunction`
// +kubebuilder:printcolumn:name="Old",type=string,JSONPath=`.spec.oldfunction`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.status`
type CanaryConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              CanaryConfigSpec `json:"spec"`
	// +optional
	Status CanaryConfigStatus `json:"status,omitempty"`
}

// CanaryConfigList is a list of CanaryConfigs.
// +kubebuilder:object:root=true
type CanaryConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CanaryConfig `json:"items"`
}
