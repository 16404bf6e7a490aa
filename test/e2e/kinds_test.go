package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// Scenario (harness): the CRDs of JobSet, PyTorchJob, RayCluster and LeaderWorkerSet are served,
// and Kueue's integration of each is live without the kind's controller: a plain object (no
// kaiwo annotation, nothing for our webhook) labelled for a LocalQueue is suspended by Kueue's
// webhook at create, gets a Workload from Kueue's reconciler, is admitted and unsuspended.
func TestKindsKueueIntegrations(t *testing.T) {
	ns := "e2e-kinds-plain"
	namespace(t, ns, nil)
	clusterQueue(t, "cq-kinds-plain", 0)
	localQueue(t, ns, "plain", "cq-kinds-plain")
	for _, k := range multiPodKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			var crd apiextensionsv1.CustomResourceDefinition
			if err := k8s.Get(bg, types.NamespacedName{Name: k.crd}, &crd); err != nil {
				t.Fatalf("CRD %s: %v", k.crd, err)
			}
			established := false
			for _, c := range crd.Status.Conditions {
				established = established || (c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue)
			}
			if !established {
				t.Fatalf("CRD %s not established: %v", k.crd, crd.Status.Conditions)
			}

			u := k.object(t, "plain", ns, nil, map[string]string{annotations.KueueQueueName: "plain"})
			if k.suspend != nil {
				k.setSuspend(t, u, false)
			}
			mustCreate(t, u)
			if _, ok := u.GetAnnotations()[annotations.Applied]; ok {
				t.Fatalf("our webhook mutated a plain %s: annotations %v", k.name, u.GetAnnotations())
			}
			if s, ok := k.suspended(u); k.suspend != nil && (!ok || !s) {
				t.Errorf("%s created with suspend false and a queue label: Kueue's webhook left %v = %v", k.name, k.suspend, s)
			}
			if k.suspend == nil {
				// Kueue's LWS webhook marks the pod template so that its pod integration gates the pods.
				a, _, _ := unstructured.NestedStringMap(u.Object, "spec", "leaderWorkerTemplate", "workerTemplate", "metadata", "annotations")
				if a["kueue.x-k8s.io/pod-suspending-parent"] != "leaderworkerset.x-k8s.io/leaderworkerset" {
					t.Errorf("worker template annotations %v: Kueue's LeaderWorkerSet webhook did not run", a)
				}
			}
			waitAllAdmitted(t, k, u, 1)
		})
	}
}

// waitAllAdmitted waits until Kueue has admitted the n Workloads of u and, for the kinds with a
// suspend field, unsuspended it; it returns the Workloads.
func waitAllAdmitted(t *testing.T, k kind, u *unstructured.Unstructured, n int) []kueue.Workload {
	t.Helper()
	var wls []kueue.Workload
	eventually(t, fmt.Sprintf("%s %s admitted by Kueue", k.name, u.GetName()), func() error {
		var err error
		if wls, err = workloadsFor(u.GetNamespace(), k.name, u.GetName()); err != nil {
			return err
		}
		if len(wls) != n {
			return fmt.Errorf("%d Workloads, want %d", len(wls), n)
		}
		for i := range wls {
			if err := admitted(&wls[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if k.suspend != nil {
		eventually(t, fmt.Sprintf("%s %s unsuspended by Kueue", k.name, u.GetName()), func() error {
			getU(t, u)
			if s, ok := k.suspended(u); !ok || s {
				return fmt.Errorf("%v = %v (set %v)", k.suspend, s, ok)
			}
			return nil
		})
	}
	return wls
}

// Scenario: a JobSet, a PyTorchJob, a RayCluster and a LeaderWorkerSet asking 16 GPUs by
// annotation (the LWS opting into queueing, as serving kinds are not queued by default) are mutated
// by our webhook (queue label, suspended, GPUs planned at most a node's 8 per pod, NUM_GPUS),
// admitted by Kueue against their ClusterQueue's 24 GPUs with 16 GPUs used, and unsuspended. A second
// one of 16 exceeds what is left: it stays suspended with its Workload pending on amd.com/gpu,
// and is admitted once the first is deleted.
func TestKindsQueuedAndAdmitted(t *testing.T) {
	for _, k := range multiPodKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			ns := "e2e-kinds-" + strings.ToLower(k.name)
			cq := "cq-" + ns
			namespace(t, ns, nil)
			clusterQueue(t, cq, 24)
			localQueue(t, ns, "kaiwo", cq)
			ann := map[string]string{annotations.GPUs: "16"}
			if k.suspend == nil {
				ann[annotations.Queueing] = "kueue"
			}

			first := k.object(t, "first", ns, ann, nil)
			mustCreate(t, first)
			checkQueued(t, k, first)
			wls := waitAllAdmitted(t, k, first, 1)
			checkGPUs(t, k, wls, 16)

			second := k.object(t, "second", ns, ann, nil)
			mustCreate(t, second)
			checkQueued(t, k, second)
			eventually(t, "the second's Workload pending for GPUs", func() error {
				wls, err := workloadsFor(ns, k.name, second.GetName())
				if err != nil {
					return err
				}
				c := meta.FindStatusCondition(wls[0].Status.Conditions, kueue.WorkloadQuotaReserved)
				if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, string(gpu)) {
					return fmt.Errorf("QuotaReserved = %+v, want False (pending) for %s", c, gpu)
				}
				return nil
			})
			consistently(t, "the second must wait while the first holds 16 of 24 GPUs", 3*time.Second, func() error {
				getU(t, second)
				if s, ok := k.suspended(second); k.suspend != nil && (!ok || !s) {
					return fmt.Errorf("unsuspended while the first runs")
				}
				wls, err := workloadsFor(ns, k.name, second.GetName())
				if err != nil {
					return err
				}
				for i := range wls {
					if admitted(&wls[i]) == nil {
						return fmt.Errorf("Workload %s admitted while the first runs", wls[i].Name)
					}
				}
				return nil
			})

			deleteWithWorkloads(t, first)
			checkGPUs(t, k, waitAllAdmitted(t, k, second, 1), 16)
		})
	}
}

// checkQueued: our webhook gave the created object the queue label of the namespace's LocalQueue,
// and (kinds with a suspend field) created it suspended.
func checkQueued(t *testing.T, k kind, u *unstructured.Unstructured) {
	t.Helper()
	if _, ok := u.GetAnnotations()[annotations.Applied]; !ok {
		t.Fatalf("%s %s not mutated by our webhook: annotations %v", k.name, u.GetName(), u.GetAnnotations())
	}
	if q := u.GetLabels()[annotations.KueueQueueName]; q != "kaiwo" {
		t.Errorf("%s %s: queue label %q, want kaiwo", k.name, u.GetName(), q)
	}
	if s, ok := k.suspended(u); k.suspend != nil && (!ok || !s) {
		t.Errorf("%s %s created unsuspended (%v = %v)", k.name, u.GetName(), k.suspend, s)
	}
}

// checkGPUs: each admitted Workload (one group of an LWS; the whole object otherwise) holds want
// GPUs in its pod sets, as Kueue counts them and as it admitted them; no pod asks more than a
// node's 8; every container given GPUs says NUM_GPUS=want.
func checkGPUs(t *testing.T, k kind, wls []kueue.Workload, want int64) {
	t.Helper()
	for _, wl := range wls {
		var spec, used int64
		for _, ps := range wl.Spec.PodSets {
			var pod int64
			for _, c := range ps.Template.Spec.Containers {
				g := gpuLimit(c)
				pod += g
				if g > 0 && envValue(c, "NUM_GPUS") != strconv.FormatInt(want, 10) {
					t.Errorf("%s pod set %s container %s: NUM_GPUS=%q, want %d", k.name, ps.Name, c.Name, envValue(c, "NUM_GPUS"), want)
				}
			}
			if pod > 8 {
				t.Errorf("%s pod set %s: %d GPUs per pod, more than a node's 8", k.name, ps.Name, pod)
			}
			spec += pod * int64(ps.Count)
		}
		for _, a := range wl.Status.Admission.PodSetAssignments {
			q := a.ResourceUsage[gpu]
			used += q.Value()
		}
		if spec != want || used != want {
			t.Errorf("%s Workload %s pod sets %v: %d GPUs in its pod sets, %d admitted, want %d", k.name, wl.Name, podSetNames(&wl), spec, used, want)
		}
		t.Logf("%s Workload %s pod sets %v admitted with %d GPUs", k.name, wl.Name, podSetNames(&wl), used)
	}
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
