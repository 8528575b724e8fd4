package kubestore

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
)

// Secrets and ConfigMaps are the cluster's own core/v1 objects (decision
// 0021, as in Fission: a Function's spec.secrets and spec.configmaps name
// core/v1 objects in its namespace). Isotope's v1.Secret and v1.ConfigMap
// have their JSON shape, so the store converts field by field on the way
// to the apiserver and back; what v1 does not model (a ConfigMap's
// binaryData, immutable) is kept on update (updateCore).

// newClientObject is an empty object of kind ki as the apiserver stores
// it: the v1 type for Isotope's kinds, the core/v1 type for the core ones.
func newClientObject(ki v1.KindInfo) client.Object {
	switch ki.Kind {
	case v1.KindSecret:
		return &corev1.Secret{}
	case v1.KindConfigMap:
		return &corev1.ConfigMap{}
	}
	return ki.New()
}

// toClient is obj as the apiserver stores it (obj itself for Isotope's
// kinds).
func toClient(obj v1.Object) client.Object {
	switch o := obj.(type) {
	case *v1.Secret:
		return &corev1.Secret{ObjectMeta: *o.ObjectMeta.DeepCopy(), Data: o.DeepCopy().Data, Type: corev1.SecretType(o.Type)}
	case *v1.ConfigMap:
		return &corev1.ConfigMap{ObjectMeta: *o.ObjectMeta.DeepCopy(), Data: o.DeepCopy().Data}
	}
	return obj
}

// fromClient is the v1 object for what the apiserver returned, with its
// type meta set; nil for an object of no kind of this store.
func fromClient(o runtime.Object) v1.Object {
	var out v1.Object
	switch c := o.(type) {
	case *corev1.Secret:
		s := &v1.Secret{ObjectMeta: c.ObjectMeta, Data: c.Data, Type: string(c.Type)}
		// stringData is write-only on the apiserver; nothing to carry.
		out = s
	case *corev1.ConfigMap:
		out = &v1.ConfigMap{ObjectMeta: c.ObjectMeta, Data: c.Data}
	case v1.Object:
		if v1.KindOf(c) == "" {
			return nil
		}
		out = c
	default:
		return nil
	}
	v1.SetTypeMeta(out)
	return out
}

// keepUnmodelled copies onto next what the stored core object cur has
// and v1 does not model, so that an update through this store never
// drops it: a ConfigMap's binaryData, immutability, and a Secret's type
// when the caller left it empty (the apiserver refuses a type change).
func keepUnmodelled(next, cur client.Object) {
	switch n := next.(type) {
	case *corev1.Secret:
		c := cur.(*corev1.Secret)
		if n.Type == "" {
			n.Type = c.Type
		}
		n.Immutable = c.Immutable
	case *corev1.ConfigMap:
		c := cur.(*corev1.ConfigMap)
		n.BinaryData = c.BinaryData
		n.Immutable = c.Immutable
	}
}

// newCoreList is the core/v1 list type of a core kind.
func newCoreList(ki v1.KindInfo) (client.ObjectList, error) {
	switch ki.Kind {
	case v1.KindSecret:
		return &corev1.SecretList{}, nil
	case v1.KindConfigMap:
		return &corev1.ConfigMapList{}, nil
	}
	return nil, fmt.Errorf("kubestore: %s is not a core kind", ki.Kind)
}
