package mutate_test

import (
	"testing"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// TestValidateUnhandled: in an Enforce namespace, GPU workloads of kinds Kaiwo does not handle are denied,
// naming the field and the supported kinds; pods of handled workloads' controllers pass.
func TestValidateUnhandled(t *testing.T) {
	enforce := teamML(t)
	cases := map[string]struct {
		raw  string
		pol  *policy.Policy
		want []string // nil: allowed
	}{
		"8 a bare GPU Pod": {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"8"}}}]}}`,
			want: []string{"spec.containers[0].resources.limits[amd.com/gpu]", "Enforce", "v1 Pod", "batch/v1 Job"}},
		"8 GPUs in a Pod's init container, as requests": {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"initContainers":[{"name":"i","resources":{"requests":{"nvidia.com/gpu":"1"}}}],"containers":[{"name":"c"}]}}`,
			want: []string{"spec.initContainers[0].resources.requests[nvidia.com/gpu]"}},
		"8 a RayCluster worker group": {raw: `{"apiVersion":"ray.io/v1","kind":"RayCluster","metadata":{"name":"r"},"spec":{"headGroupSpec":{"template":{"spec":{"containers":[{"name":"h"}]}}},"workerGroupSpecs":[{"template":{"spec":{"containers":[{"name":"w","resources":{"limits":{"amd.com/gpu":"8"}}}]}}}]}}`,
			want: []string{"spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits[amd.com/gpu]", "ray.io/v1 RayCluster"}},
		"8 a StatefulSet": {raw: `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"s"},"spec":{"template":{"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"1"}}}]}}}}`,
			want: []string{"spec.template.spec.containers[0]", "apps/v1 StatefulSet"}},
		"a Pod with MIG slices": {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","resources":{"limits":{"nvidia.com/mig-1g.10gb":"1"}}}]}}`,
			want: []string{"spec.containers[0].resources.limits[nvidia.com/mig-1g.10gb]"}},
		"a CronJob": {raw: `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"1"}}}]}}}}}}`,
			want: []string{"spec.jobTemplate.spec.template.spec.containers[0]"}},
		"a Pod owned by a ConfigMap, controller: true": {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"x","uid":"1","controller":true}]},"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"8"}}}]}}`,
			want: []string{"v1 Pod"}},
		"a Pod owned by a Job, not as controller": {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"x","uid":"1"}]},"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"8"}}}]}}`,
			want: []string{"v1 Pod"}},
		"a Pod with a DRA claim": {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"resourceClaims":[{"name":"g","resourceClaimTemplateName":"t"}],"containers":[{"name":"c","resources":{"claims":[{"name":"g"}]}}]}}`,
			want: []string{"spec.containers[0].resources.claims", "v1 Pod"}},
		"a TFJob of 100 GPU workers": {raw: `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"t"},"spec":{"tfReplicaSpecs":{"Worker":{"replicas":100,"template":{"spec":{"containers":[{"name":"tensorflow","resources":{"limits":{"amd.com/gpu":"32"}}}]}}}}}}`,
			want: []string{"spec.tfReplicaSpecs.Worker.template.spec.containers[0].resources.limits[amd.com/gpu]", "kubeflow.org/v1 TFJob"}},
		"an MPIJob launcher": {raw: `{"apiVersion":"kubeflow.org/v2beta1","kind":"MPIJob","metadata":{"name":"m"},"spec":{"mpiReplicaSpecs":{"Launcher":{"template":{"spec":{"containers":[{"name":"l","resources":{"limits":{"nvidia.com/gpu":"1"}}}]}}}}}}`,
			want: []string{"kubeflow.org/v2beta1 MPIJob"}},
		"allowed: a CPU XGBoostJob":               {raw: `{"apiVersion":"kubeflow.org/v1","kind":"XGBoostJob","metadata":{"name":"x"},"spec":{"xgbReplicaSpecs":{"Master":{"template":{"spec":{"containers":[{"name":"x"}]}}}}}}`},
		"allowed: a Pod with an empty claim list": {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","resources":{"claims":[]}}]}}`},
		"allowed: a Job's Pod":                    {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"x","uid":"1","controller":true}]},"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"8"}}}]}}`},
		"allowed: a RayCluster's Pod":             {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","ownerReferences":[{"apiVersion":"ray.io/v1","kind":"RayCluster","name":"x","uid":"1","controller":true}]},"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"8"}}}]}}`},
		"allowed: a Pod with zero GPUs":           {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"0","cpu":"1"}}}]}}`},
		"allowed: a CPU Pod":                      {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}`},
		"allowed: a GPU Pod in OptIn":             {pol: policy.Default(), raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"8"}}}]}}`},
		"allowed: a GPU Pod being deleted":        {raw: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","deletionTimestamp":"2026-01-01T00:00:00Z"},"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"8"}}}]}}`},
		"allowed: a RayJob's RayCluster":          {raw: `{"apiVersion":"ray.io/v1","kind":"RayCluster","metadata":{"name":"r","ownerReferences":[{"apiVersion":"ray.io/v1","kind":"RayJob","name":"x","uid":"1","controller":true}]},"spec":{"workerGroupSpecs":[{"template":{"spec":{"containers":[{"name":"w","resources":{"limits":{"amd.com/gpu":"8"}}}]}}}]}}`},
		"allowed: a Deployment's ReplicaSet":      {raw: `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"r","ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"x","uid":"1","controller":true}]},"spec":{"template":{"spec":{"containers":[{"name":"w","resources":{"limits":{"amd.com/gpu":"8"}}}]}}}}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := tc.pol
			if p == nil {
				p = enforce
			}
			err := kinds.ValidateUnhandled([]byte(tc.raw), p)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
				return
			}
			wantDenied(t, err, tc.want...)
		})
	}
}

// TestForgedOwnerReference: a controller owner reference exempts a GPU object only when a controller makes
// the request; a team user who writes one by hand is refused as without it.
func TestForgedOwnerReference(t *testing.T) {
	pol := teamML(t)
	const pod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ml","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"cpu-only","uid":"1","controller":true}]},"spec":{"containers":[{"name":"c","resources":{"limits":{"amd.com/gpu":"64"}}}]}}`
	cases := map[string]struct {
		user string
		want []string // nil: allowed
	}{
		"a team user":                         {user: "alice@example.com", want: []string{"spec.containers[0].resources.limits[amd.com/gpu]", "exempts it only when a controller makes the request", `"alice@example.com"`}},
		"a service account of the namespace":  {user: "system:serviceaccount:ml:builder", want: []string{"exempts it only when a controller"}},
		"anonymous":                           {user: "system:anonymous", want: []string{"exempts it only when a controller"}},
		"allowed: the ReplicaSet controller":  {user: "system:serviceaccount:kube-system:replicaset-controller"},
		"allowed: the controller manager":     {user: "system:kube-controller-manager"},
		"allowed: KubeRay's operator":         {user: "system:serviceaccount:ray-system:kuberay-operator"},
		"allowed: unknown (offline, no user)": {user: ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := kinds.ValidateUnhandledBy([]byte(pod), pol, tc.user)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
				return
			}
			wantDenied(t, err, tc.want...)
		})
	}
}
