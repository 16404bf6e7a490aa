package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	kftraining "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	lwsv1 "sigs.k8s.io/lws/api/leaderworkerset/v1"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// TestScaleOfLWSAndPyTorchJob: a scale-up of a LeaderWorkerSet (its groups) or a PyTorchJob (its Workers)
// is checked as a Deployment's: the server reads the object and holds the GPUs to the limit; a scale-down
// reads nothing.
func TestScaleOfLWSAndPyTorchJob(t *testing.T) {
	tpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{"amd.com/gpu": resource.MustParse("8")}, Requests: corev1.ResourceList{"amd.com/gpu": resource.MustParse("8")}}}}}}
	meta := metav1.ObjectMeta{Name: "serve", Namespace: "team-ml", Annotations: map[string]string{annotations.Queueing: "kueue"}}
	lws := &lwsv1.LeaderWorkerSet{TypeMeta: metav1.TypeMeta{APIVersion: "leaderworkerset.x-k8s.io/v1", Kind: "LeaderWorkerSet"}, ObjectMeta: meta,
		Spec: lwsv1.LeaderWorkerSetSpec{Replicas: ptr.To[int32](1), LeaderWorkerTemplate: lwsv1.LeaderWorkerTemplate{Size: ptr.To[int32](2), WorkerTemplate: tpl}}}
	pt := &kftraining.PyTorchJob{TypeMeta: metav1.TypeMeta{APIVersion: "kubeflow.org/v1", Kind: "PyTorchJob"}, ObjectMeta: meta,
		Spec: kftraining.PyTorchJobSpec{PyTorchReplicaSpecs: map[kftraining.ReplicaType]*kftraining.ReplicaSpec{
			"Master": {Replicas: ptr.To[int32](1), Template: tpl}, "Worker": {Replicas: ptr.To[int32](1), Template: tpl}}}}
	for _, tc := range []struct {
		obj      any
		resource string
		grow     int32
		want     []string
	}{
		{lws, "leaderworkersets", 3, []string{"48 GPUs", "maxGpusPerWorkload (32)"}},
		{pt, "pytorchjobs", 4, []string{"40 GPUs", "spec.pytorchReplicaSpecs[Worker].replicas=4"}},
	} {
		t.Run(tc.resource, func(t *testing.T) {
			v := newValidator(t, fixedPolicy{teamPolicy(t)})
			b, _ := json.Marshal(tc.obj)
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(b); err != nil {
				t.Fatal(err)
			}
			v.reader.custom[u.GetKind()+"/serve"] = u
			gr := &metav1.GroupVersionResource{Group: u.GroupVersionKind().Group, Version: "v1", Resource: tc.resource}
			req := func(from, to int32) vreq {
				return vreq{op: admissionv1.Update, obj: scaleObj(to), old: scaleObj(from), kind: scaleKind, resource: gr, subResource: "scale", name: "serve"}
			}
			wantCode(t, v.send(t, req(1, tc.grow)), http.StatusForbidden, tc.want...)
			if resp := v.send(t, req(1, 2)); !resp.Allowed {
				t.Errorf("a scale-up within the limit is denied: %+v", resp.Result)
			}
			reads := v.reader.reads
			if resp := v.send(t, req(2, 1)); !resp.Allowed || v.reader.reads != reads {
				t.Errorf("a scale-down: allowed %v, %d reads, want allowed without a read", resp.Allowed, v.reader.reads-reads)
			}
		})
	}
}
