// +kubebuilder:object:generate=true
// +groupName=kaiwo.silogen.ai

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of KaiwoPolicy.
var GroupVersion = schema.GroupVersion{Group: "kaiwo.silogen.ai", Version: "v1alpha1"}

var (
	// SchemeBuilder registers this package's types; AddToScheme applies it to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds KaiwoPolicy and KaiwoPolicyList to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &KaiwoPolicy{}, &KaiwoPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
