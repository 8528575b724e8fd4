package v1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Kinds of the configuration a function reads from files.
const (
	KindSecret    = "Secret"
	KindConfigMap = "ConfigMap"
)

// MaxConfigSize bounds the data of one Secret or ConfigMap (keys and
// values together), as Kubernetes does: 1 MiB.
const MaxConfigSize = 1 << 20

// Secret is named values a function reads as files at
// /secrets/<namespace>/<name>/<key> (Fission's layout). It has the shape
// of a Kubernetes core/v1 Secret; in embedded mode the store keeps its
// values encrypted, and in Kubernetes mode it is a real Secret
// (docs/decisions/0021-secrets-and-configmaps.md).
// No CRD: on Kubernetes the kind is core/v1's.
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type Secret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// Data maps a key (a file name) to its value.
	// +optional
	Data map[string][]byte `json:"data,omitempty"`
	// Type is the Kubernetes secret type; "" means Opaque.
	// +optional
	Type string `json:"type,omitempty"`
}

// SecretList is a list of Secrets.
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type SecretList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Secret `json:"items"`
}

// ConfigMap is named, non-secret values a function reads as files at
// /configs/<namespace>/<name>/<key>, shaped as a Kubernetes core/v1
// ConfigMap.
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type ConfigMap struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// Data maps a key (a file name) to its text.
	// +optional
	Data map[string]string `json:"data,omitempty"`
}

// ConfigMapList is a list of ConfigMaps.
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type ConfigMapList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConfigMap `json:"items"`
}
