package e2e

// The multi-pod kinds Kueue queues besides Job and RayJob, as the tests create them: the smallest
// objects their CRDs accept, one container per pod template and no resources of their own, so that
// every GPU a pod asks comes from our webhook. No controller of these kinds runs here: Kueue creates
// their Workloads, admits them and unsuspends the objects by itself.

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"
	"sigs.k8s.io/yaml"
)

// kind is one of those kinds.
type kind struct {
	name string // Kind, as in Kueue's Workload owner references
	crd  string // its CustomResourceDefinition
	// suspend is the path of the field Kueue suspends it by; nil for LeaderWorkerSet, which Kueue
	// holds by gating its pods and admitting one Workload per group.
	suspend []string
	// manifest is its YAML, with %[1]s the name, %[2]s the namespace, %[3]s the metadata's
	// annotations and labels (indented for metadata:).
	manifest string
}

var jobSet = kind{name: "JobSet", crd: "jobsets.jobset.x-k8s.io", suspend: []string{"spec", "suspend"}, manifest: `
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: %[1]s
  namespace: %[2]s
%[3]s
spec:
  replicatedJobs:
  - name: workers
    replicas: 1
    template:
      spec:
        parallelism: 1
        completions: 1
        backoffLimit: 0
        template:
          spec:
            restartPolicy: Never
            containers:
            - name: main
              image: busybox
`}

var pyTorchJob = kind{name: "PyTorchJob", crd: "pytorchjobs.kubeflow.org", suspend: []string{"spec", "runPolicy", "suspend"}, manifest: `
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: %[1]s
  namespace: %[2]s
%[3]s
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: OnFailure
      template:
        spec:
          containers:
          - name: pytorch
            image: busybox
    Worker:
      replicas: 1
      restartPolicy: OnFailure
      template:
        spec:
          containers:
          - name: pytorch
            image: busybox
`}

var rayCluster = kind{name: "RayCluster", crd: "rayclusters.ray.io", suspend: []string{"spec", "suspend"}, manifest: `
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: %[1]s
  namespace: %[2]s
%[3]s
spec:
  rayVersion: 2.40.0
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: busybox
  workerGroupSpecs:
  - groupName: workers
    replicas: 1
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-worker
          image: busybox
`}

var leaderWorkerSet = kind{name: "LeaderWorkerSet", crd: "leaderworkersets.leaderworkerset.x-k8s.io", manifest: `
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata:
  name: %[1]s
  namespace: %[2]s
%[3]s
spec:
  replicas: 1
  rolloutStrategy:
    type: RollingUpdate
  leaderWorkerTemplate:
    size: 2
    workerTemplate:
      spec:
        containers:
        - name: main
          image: busybox
`}

var multiPodKinds = []kind{jobSet, pyTorchJob, rayCluster, leaderWorkerSet}

// object renders k's manifest with the given annotations and labels.
func (k kind) object(t *testing.T, name, ns string, annotations, labels map[string]string) *unstructured.Unstructured {
	t.Helper()
	var m strings.Builder
	for _, f := range []struct {
		key  string
		vals map[string]string
	}{{"annotations", annotations}, {"labels", labels}} {
		if len(f.vals) == 0 {
			continue
		}
		fmt.Fprintf(&m, "  %s:\n", f.key)
		for k, v := range f.vals {
			fmt.Fprintf(&m, "    %s: %q\n", k, v)
		}
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(fmt.Sprintf(k.manifest, name, ns, strings.TrimRight(m.String(), "\n"))), &u.Object); err != nil {
		t.Fatalf("%s manifest: %v", k.name, err)
	}
	return u
}

// suspended reports the object's suspend field; ok is false when it has none or k has none.
func (k kind) suspended(u *unstructured.Unstructured) (suspended, ok bool) {
	if k.suspend == nil {
		return false, false
	}
	suspended, ok, _ = unstructured.NestedBool(u.Object, k.suspend...)
	return suspended, ok
}

// setSuspend sets the suspend field (for kinds that have one).
func (k kind) setSuspend(t *testing.T, u *unstructured.Unstructured, v bool) {
	t.Helper()
	if err := unstructured.SetNestedField(u.Object, v, k.suspend...); err != nil {
		t.Fatal(err)
	}
}

func getU(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	if err := k8s.Get(bg, client.ObjectKeyFromObject(u), u); err != nil {
		t.Fatalf("getting %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// workloadsFor returns the Workloads Kueue created for the owner kind/name (an LWS has one per
// group, the other kinds one).
func workloadsFor(ns, kind, name string) ([]kueue.Workload, error) {
	var list kueue.WorkloadList
	if err := k8s.List(bg, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []kueue.Workload
	for _, wl := range list.Items {
		for _, o := range wl.OwnerReferences {
			if o.Kind == kind && o.Name == name {
				out = append(out, wl)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no Workload for %s %s/%s (%d workloads)", kind, ns, name, len(list.Items))
	}
	return out, nil
}

// deleteWithWorkloads deletes u and, as the garbage collector of kube-controller-manager would (it
// does not run here), the Workloads it owns.
func deleteWithWorkloads(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	wls, err := workloadsFor(u.GetNamespace(), u.GetKind(), u.GetName())
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(bg, u); err != nil {
		t.Fatal(err)
	}
	for i := range wls {
		if err := k8s.Delete(bg, &wls[i]); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
}
