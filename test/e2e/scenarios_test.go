package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

const (
	gpu         = corev1.ResourceName("amd.com/gpu")
	flavor      = "mi300x"
	flavorLabel = "e2e.kaiwo.silogen.ai/gpu-pool"
	timeout     = 60 * time.Second
)

var bg = context.Background()

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consistently fails if f returns an error within d.
func consistently(t *testing.T, what string, d time.Duration, f func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

func mustCreate(t *testing.T, obj client.Object, opts ...client.CreateOption) {
	t.Helper()
	if err := k8s.Create(bg, obj, opts...); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func get(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Get(bg, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatalf("getting %T %s: %v", obj, obj.GetName(), err)
	}
}

func namespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
}

// clusterQueue creates a ClusterQueue over the GPU flavor with gpus amd.com/gpu
// (CPU and memory plentiful), and the flavor once.
func clusterQueue(t *testing.T, name string, gpus int) {
	t.Helper()
	rf := &kueue.ResourceFlavor{ObjectMeta: metav1.ObjectMeta{Name: flavor},
		Spec: kueue.ResourceFlavorSpec{NodeLabels: map[string]string{flavorLabel: flavor}}}
	if err := k8s.Create(bg, rf); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	mustCreate(t, &kueue.ClusterQueue{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kueue.ClusterQueueSpec{
			NamespaceSelector: &metav1.LabelSelector{},
			ResourceGroups: []kueue.ResourceGroup{{
				CoveredResources: []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, gpu},
				Flavors: []kueue.FlavorQuotas{{Name: flavor, Resources: []kueue.ResourceQuota{
					{Name: corev1.ResourceCPU, NominalQuota: resource.MustParse("10000")},
					{Name: corev1.ResourceMemory, NominalQuota: resource.MustParse("100Ti")},
					{Name: gpu, NominalQuota: *resource.NewQuantity(int64(gpus), resource.DecimalSI)},
				}}},
			}},
		},
	})
	eventually(t, "ClusterQueue "+name+" active", func() error {
		var cq kueue.ClusterQueue
		if err := k8s.Get(bg, types.NamespacedName{Name: name}, &cq); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(cq.Status.Conditions, kueue.ClusterQueueActive) {
			return fmt.Errorf("conditions %v", cq.Status.Conditions)
		}
		return nil
	})
}

func localQueue(t *testing.T, ns, name, cq string) {
	t.Helper()
	mustCreate(t, &kueue.LocalQueue{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: kueue.LocalQueueSpec{ClusterQueue: kueue.ClusterQueueReference(cq)}})
}

// workloadFor returns the Workload Kueue created for the owner kind/name.
func workloadFor(ns, kind, name string) (*kueue.Workload, error) {
	var list kueue.WorkloadList
	if err := k8s.List(bg, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	for i := range list.Items {
		for _, o := range list.Items[i].OwnerReferences {
			if o.Kind == kind && o.Name == name {
				return &list.Items[i], nil
			}
		}
	}
	return nil, fmt.Errorf("no Workload for %s %s/%s (%d workloads)", kind, ns, name, len(list.Items))
}

func admitted(wl *kueue.Workload) error {
	if wl.Status.Admission == nil || !meta.IsStatusConditionTrue(wl.Status.Conditions, kueue.WorkloadAdmitted) {
		return fmt.Errorf("workload %s not admitted: %v", wl.Name, wl.Status.Conditions)
	}
	return nil
}

func waitAdmitted(t *testing.T, ns, kind, name string) *kueue.Workload {
	t.Helper()
	var wl *kueue.Workload
	eventually(t, kind+" "+name+" admitted by Kueue", func() error {
		var err error
		if wl, err = workloadFor(ns, kind, name); err != nil {
			return err
		}
		return admitted(wl)
	})
	return wl
}

func gpuLimit(c corev1.Container) int64 {
	q := c.Resources.Limits[gpu]
	return q.Value()
}

// deleteJob deletes a Job and, as the garbage collector of
// kube-controller-manager would (it does not run here), its Workload.
func deleteJob(t *testing.T, j *batchv1.Job) {
	t.Helper()
	if err := k8s.Delete(bg, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	wl, err := workloadFor(j.Namespace, "Job", j.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(bg, wl); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

// Scenario: a ClusterQueue of 16 amd.com/gpu; an 8-GPU Job is mutated, Kueue
// admits it and unsuspends it with the flavor's node selector; a Job of 2 x 8
// GPUs waits until the first is deleted.
func TestJobAdmittedByKueue(t *testing.T) {
	ns := "e2e-job"
	namespace(t, ns, nil)
	clusterQueue(t, "cq-job", 16)
	localQueue(t, ns, "kaiwo", "cq-job")

	first := MakeJob("gpu8", ns).Annotate(annotations.GPUs, "8").Obj()
	mustCreate(t, first)
	if first.Labels[annotations.KueueQueueName] != "kaiwo" {
		t.Fatalf("created Job has labels %v, want queue-name kaiwo", first.Labels)
	}
	if got := gpuLimit(first.Spec.Template.Spec.Containers[0]); got != 8 {
		t.Fatalf("amd.com/gpu limit = %d, want 8", got)
	}
	wl := waitAdmitted(t, ns, "Job", first.Name)
	if ps := wl.Status.Admission.PodSetAssignments; len(ps) != 1 || ps[0].Flavors[gpu] != flavor {
		t.Errorf("admission = %+v, want flavor %s for %s", ps, flavor, gpu)
	}
	eventually(t, "Job gpu8 unsuspended with Kueue's node selector", func() error {
		get(t, first)
		if ptr.Deref(first.Spec.Suspend, true) {
			return fmt.Errorf("still suspended")
		}
		if first.Spec.Template.Spec.NodeSelector[flavorLabel] != flavor {
			return fmt.Errorf("nodeSelector %v", first.Spec.Template.Spec.NodeSelector)
		}
		return nil
	})

	// 2 pods x 8 GPUs: a pod of 16 would not fit an 8-GPU node and is denied.
	second := MakeJob("gpu16", ns).Annotate(annotations.GPUs, "8").Parallelism(2).Obj()
	mustCreate(t, second)
	eventually(t, "Workload for gpu16 pending", func() error {
		wl, err := workloadFor(ns, "Job", second.Name)
		if err != nil {
			return err
		}
		if c := meta.FindStatusCondition(wl.Status.Conditions, kueue.WorkloadQuotaReserved); c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("QuotaReserved = %+v, want False (pending)", c)
		}
		return nil
	})
	consistently(t, "gpu16 must wait while gpu8 holds 8 of 16 GPUs", 3*time.Second, func() error {
		get(t, second)
		if !ptr.Deref(second.Spec.Suspend, false) {
			return fmt.Errorf("gpu16 unsuspended while gpu8 runs")
		}
		wl, err := workloadFor(ns, "Job", second.Name)
		if err != nil {
			return err
		}
		if admitted(wl) == nil {
			return fmt.Errorf("gpu16 admitted while gpu8 runs")
		}
		return nil
	})

	deleteJob(t, first)
	waitAdmitted(t, ns, "Job", second.Name)
	eventually(t, "Job gpu16 unsuspended", func() error {
		get(t, second)
		if ptr.Deref(second.Spec.Suspend, true) {
			return fmt.Errorf("still suspended")
		}
		return nil
	})
}

// Scenario: a RayJob asking 16 GPUs on 8-GPU nodes is planned as 2 workers x 8
// and admitted as one Workload with the right pod sets.
func TestRayJobPlannedAndAdmitted(t *testing.T) {
	ns := "e2e-ray"
	namespace(t, ns, nil)
	clusterQueue(t, "cq-ray", 16)
	localQueue(t, ns, "kaiwo", "cq-ray")

	rj := MakeRayJob("train", ns, "workers").Annotate(annotations.GPUs, "16").Obj()
	mustCreate(t, rj)
	g := rj.Spec.RayClusterSpec.WorkerGroupSpecs[0]
	if ptr.Deref(g.Replicas, 0) != 2 || gpuLimit(g.Template.Spec.Containers[0]) != 8 {
		t.Fatalf("worker group = %d x %d GPUs, want 2 x 8", ptr.Deref(g.Replicas, 0), gpuLimit(g.Template.Spec.Containers[0]))
	}
	wl := waitAdmitted(t, ns, "RayJob", rj.Name)
	var workers *kueue.PodSet
	for i := range wl.Spec.PodSets {
		if wl.Spec.PodSets[i].Name == "workers" {
			workers = &wl.Spec.PodSets[i]
		}
	}
	if workers == nil {
		t.Fatalf("no pod set \"workers\" in %v", podSetNames(wl))
	}
	if workers.Count != 2 || gpuLimit(workers.Template.Spec.Containers[0]) != 8 {
		t.Errorf("pod set workers = %d x %d GPUs, want 2 x 8", workers.Count, gpuLimit(workers.Template.Spec.Containers[0]))
	}
	var total int64
	for _, a := range wl.Status.Admission.PodSetAssignments {
		q := a.ResourceUsage[gpu]
		total += q.Value()
		if a.Name == "workers" && q.Value() != 16 {
			t.Errorf("admitted GPUs for workers = %s, want 16", q.String())
		}
	}
	if total != 16 {
		t.Errorf("admitted GPUs over all pod sets = %d, want 16", total)
	}
	t.Logf("Workload %s pod sets %v admitted with %d GPUs", wl.Name, podSetNames(wl), total)
	eventually(t, "RayJob unsuspended by Kueue", func() error {
		get(t, rj)
		if rj.Spec.Suspend {
			return fmt.Errorf("still suspended")
		}
		return nil
	})
}

func podSetNames(wl *kueue.Workload) []string {
	var names []string
	for _, ps := range wl.Spec.PodSets {
		names = append(names, fmt.Sprintf("%s(%d)", ps.Name, ps.Count))
	}
	return names
}

// Scenario: kubectl apply --dry-run=server prints the mutated Job and creates nothing.
func TestServerDryRun(t *testing.T) {
	ns := "e2e-dryrun"
	namespace(t, ns, nil)
	j := MakeJob("preview", ns).Annotate(annotations.GPUs, "4").Obj()
	in, err := yaml.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, err := kubectlRun(in, "apply", "--dry-run=server", "-o", "yaml", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	var got batchv1.Job
	if err := yaml.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not a Job: %v\n%s", err, out)
	}
	if got.Labels[annotations.KueueQueueName] != "kaiwo" || !ptr.Deref(got.Spec.Suspend, false) {
		t.Errorf("dry-run output not queued: labels %v suspend %v", got.Labels, got.Spec.Suspend)
	}
	if gpuLimit(got.Spec.Template.Spec.Containers[0]) != 4 {
		t.Errorf("dry-run output GPU limit = %d, want 4", gpuLimit(got.Spec.Template.Spec.Containers[0]))
	}
	if !strings.Contains(stderr, "kaiwo") {
		t.Logf("kubectl printed no kaiwo warnings on stderr: %q", stderr)
	}
	err = k8s.Get(bg, client.ObjectKeyFromObject(j), &batchv1.Job{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("dry-run created the Job (get: %v)", err)
	}
	var wls kueue.WorkloadList
	if err := k8s.List(bg, &wls, client.InNamespace(ns)); err != nil || len(wls.Items) != 0 {
		t.Errorf("dry-run left %d workloads (%v)", len(wls.Items), err)
	}
}

// Scenario: the LocalQueue controller creates the namespace's LocalQueue from
// the policy, and Kueue reports it active.
func TestLocalQueueFromPolicy(t *testing.T) {
	clusterQueue(t, "cq-team", 64)
	policy(t, "e2e-lq", map[string]string{"kaiwo.silogen.ai/team": "e2e-lq"}, &v1alpha1.PolicyDefaults{Queue: "team-lq"}, "cq-team")
	ns := "e2e-lq"
	namespace(t, ns, map[string]string{"kaiwo.silogen.ai/team": "e2e-lq"})
	eventually(t, "LocalQueue team-lq created and active", func() error {
		var lq kueue.LocalQueue
		if err := k8s.Get(bg, types.NamespacedName{Namespace: ns, Name: "team-lq"}, &lq); err != nil {
			return err
		}
		if lq.Spec.ClusterQueue != "cq-team" {
			return fmt.Errorf("clusterQueue %q", lq.Spec.ClusterQueue)
		}
		if !meta.IsStatusConditionTrue(lq.Status.Conditions, kueue.LocalQueueActive) {
			return fmt.Errorf("conditions %v", lq.Status.Conditions)
		}
		return nil
	})
	j := MakeJob("uses-policy-queue", ns).Annotate(annotations.GPUs, "1").Obj()
	mustCreate(t, j)
	if j.Labels[annotations.KueueQueueName] != "team-lq" {
		t.Errorf("Job queue label = %q, want team-lq", j.Labels[annotations.KueueQueueName])
	}
	waitAdmitted(t, ns, "Job", j.Name)
}

func policy(t *testing.T, name string, nsLabels map[string]string, d *v1alpha1.PolicyDefaults, cq string) {
	t.Helper()
	p := &v1alpha1.KaiwoPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.KaiwoPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsLabels},
			Defaults:          d,
		},
	}
	if cq != "" {
		p.Spec.LocalQueue = &v1alpha1.LocalQueuePolicy{Create: true, ClusterQueue: cq}
	}
	mustCreate(t, p)
}

// Scenario: a Deployment and a RayService are mutated and not queued by
// default, and queued when the namespace policy says servingQueueing: kueue.
func TestServingQueueing(t *testing.T) {
	plain := "e2e-serve"
	namespace(t, plain, nil)
	d := MakeDeployment("llm", plain).Annotate(annotations.GPUs, "1").Obj()
	mustCreate(t, d)
	if gpuLimit(d.Spec.Template.Spec.Containers[0]) != 1 {
		t.Errorf("Deployment not mutated: GPU limit %d", gpuLimit(d.Spec.Template.Spec.Containers[0]))
	}
	if _, ok := d.Labels[annotations.KueueQueueName]; ok {
		t.Errorf("Deployment queued by default: %v", d.Labels)
	}
	rs := MakeRayService("serve", plain, "workers").Annotate(annotations.GPUs, "8").Obj()
	mustCreate(t, rs)
	if gpuLimit(rs.Spec.RayClusterSpec.WorkerGroupSpecs[0].Template.Spec.Containers[0]) != 8 {
		t.Errorf("RayService not mutated: worker GPU limit %d", gpuLimit(rs.Spec.RayClusterSpec.WorkerGroupSpecs[0].Template.Spec.Containers[0]))
	}
	if _, ok := rs.Labels[annotations.KueueQueueName]; ok || ptr.Deref(rs.Spec.RayClusterSpec.Suspend, false) {
		t.Errorf("RayService queued by default: labels %v suspend %v", rs.Labels, rs.Spec.RayClusterSpec.Suspend)
	}

	clusterQueue(t, "cq-serve", 64)
	policy(t, "e2e-serving", map[string]string{"kaiwo.silogen.ai/team": "e2e-serving"},
		&v1alpha1.PolicyDefaults{Queue: "serving", ServingQueueing: "kueue"}, "cq-serve")
	queued := "e2e-serve-q"
	namespace(t, queued, map[string]string{"kaiwo.silogen.ai/team": "e2e-serving"})
	// The policy index follows the namespace; wait until a Deployment sees it.
	var dq *appsv1.Deployment
	eventually(t, "Deployment queued under servingQueueing: kueue", func() error {
		dq = MakeDeployment(fmt.Sprintf("llm-%d", time.Now().UnixNano()%100000), queued).Annotate(annotations.GPUs, "1").Obj()
		if err := k8s.Create(bg, dq); err != nil {
			return err
		}
		if dq.Labels[annotations.KueueQueueName] != "serving" {
			return fmt.Errorf("labels %v", dq.Labels)
		}
		return nil
	})
	if dq.Spec.Template.Labels[annotations.KueueQueueName] != "serving" {
		t.Errorf("queued Deployment's pod template labels %v, want queue-name serving", dq.Spec.Template.Labels)
	}
	rq := MakeRayService("serve", queued, "workers").Annotate(annotations.GPUs, "8").Obj()
	mustCreate(t, rq)
	if rq.Labels[annotations.KueueQueueName] != "serving" || !ptr.Deref(rq.Spec.RayClusterSpec.Suspend, false) {
		t.Errorf("RayService not queued: labels %v suspend %v", rq.Labels, rq.Spec.RayClusterSpec.Suspend)
	}
	eventually(t, "LocalQueue serving active", func() error {
		var lq kueue.LocalQueue
		if err := k8s.Get(bg, types.NamespacedName{Namespace: queued, Name: "serving"}, &lq); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(lq.Status.Conditions, kueue.LocalQueueActive) {
			return fmt.Errorf("conditions %v", lq.Status.Conditions)
		}
		return nil
	})
}

// Scenario: with Kueue's mutating webhook called first and never reinvoked,
// the Job still ends with label and suspend and is admitted.
func TestOrderKueueWebhookFirst(t *testing.T) {
	var orig admissionregistrationv1.MutatingWebhookConfiguration
	if err := k8s.Get(bg, types.NamespacedName{Name: kueueMutatingName}, &orig); err != nil {
		t.Fatal(err)
	}
	// The API server calls mutating configurations in name order: rename Kueue's to sort first.
	first := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "0-" + kueueMutatingName}}
	first.Webhooks = orig.DeepCopy().Webhooks
	for i := range first.Webhooks {
		first.Webhooks[i].ReinvocationPolicy = ptr.To(admissionregistrationv1.NeverReinvocationPolicy)
	}
	mustCreate(t, first)
	if err := k8s.Delete(bg, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k8s.Delete(bg, first)
		restore := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: kueueMutatingName}, Webhooks: orig.Webhooks}
		if err := k8s.Create(bg, restore); err != nil {
			t.Errorf("restoring %s: %v", kueueMutatingName, err)
		}
	})
	var all admissionregistrationv1.MutatingWebhookConfigurationList
	if err := k8s.List(bg, &all); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range all.Items {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	if len(names) < 2 || names[0] != first.Name || !contains(names, "kaiwo-webhook") {
		t.Fatalf("mutating configurations in call order %v: want %s before kaiwo-webhook", names, first.Name)
	}
	// Our mutating webhooks may be reinvoked (IfNeeded); Kueue's, now first, never.
	if w := first.Webhooks[0]; ptr.Deref(w.ReinvocationPolicy, "") != admissionregistrationv1.NeverReinvocationPolicy {
		t.Fatalf("kueue reinvocationPolicy = %v", w.ReinvocationPolicy)
	}

	ns := "e2e-order"
	namespace(t, ns, nil)
	clusterQueue(t, "cq-order", 16)
	localQueue(t, ns, "kaiwo", "cq-order")
	j := MakeJob("ordered", ns).Annotate(annotations.GPUs, "8").Obj()
	// The admission chain's result, before any controller acts: label and suspend together.
	in, err := yaml.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := kubectlRun(in, "create", "--dry-run=server", "-o", "yaml", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	var dry batchv1.Job
	if err := yaml.Unmarshal([]byte(out), &dry); err != nil {
		t.Fatal(err)
	}
	if dry.Labels[annotations.KueueQueueName] != "kaiwo" || !ptr.Deref(dry.Spec.Suspend, false) {
		t.Fatalf("after Kueue-then-kaiwo admission: labels %v suspend %v, want queue-name and suspend", dry.Labels, dry.Spec.Suspend)
	}
	mustCreate(t, j)
	waitAdmitted(t, ns, "Job", j.Name)
	eventually(t, "Job unsuspended", func() error {
		get(t, j)
		if ptr.Deref(j.Spec.Suspend, true) {
			return fmt.Errorf("still suspended")
		}
		return nil
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Scenario (kueue#2878): a newer RayJob CRD has fields our Go types lack, at the
// top level and inside a worker group; they survive our admission.
func TestVersionSkewUnknownFieldsSurvive(t *testing.T) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := k8s.Get(bg, types.NamespacedName{Name: "rayjobs.ray.io"}, &crd); err != nil {
		t.Fatal(err)
	}
	newer := &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"mode": {Type: "string"}, "budget": {Type: "integer"},
	}}
	found := false
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		if v.Name != "v1" {
			continue
		}
		spec := v.Schema.OpenAPIV3Schema.Properties["spec"]
		if spec.XPreserveUnknownFields != nil && *spec.XPreserveUnknownFields {
			t.Fatal("RayJob spec preserves unknown fields; the test would prove nothing")
		}
		spec.Properties["futureScheduling"] = *newer
		rc := spec.Properties["rayClusterSpec"]
		wg := rc.Properties["workerGroupSpecs"]
		item := wg.Items.Schema
		item.Properties["futureGroupPolicy"] = *newer
		rc.Properties["workerGroupSpecs"] = wg
		spec.Properties["rayClusterSpec"] = rc
		v.Schema.OpenAPIV3Schema.Properties["spec"] = spec
		found = true
	}
	if !found {
		t.Fatal("rayjobs.ray.io has no v1")
	}
	if err := k8s.Update(bg, &crd); err != nil {
		t.Fatal(err)
	}

	ns := "e2e-skew"
	namespace(t, ns, nil)
	typed := MakeRayJob("future", ns, "workers").Annotate(annotations.GPUs, "16").Obj()
	raw, err := runtimeToUnstructured(typed)
	if err != nil {
		t.Fatal(err)
	}
	top := map[string]any{"mode": "gang", "budget": int64(7)}
	grp := map[string]any{"mode": "spread", "budget": int64(3)}
	if err := unstructured.SetNestedField(raw.Object, top, "spec", "futureScheduling"); err != nil {
		t.Fatal(err)
	}
	groups, _, _ := unstructured.NestedSlice(raw.Object, "spec", "rayClusterSpec", "workerGroupSpecs")
	groups[0].(map[string]any)["futureGroupPolicy"] = grp
	if err := unstructured.SetNestedSlice(raw.Object, groups, "spec", "rayClusterSpec", "workerGroupSpecs"); err != nil {
		t.Fatal(err)
	}
	// The updated schema takes effect asynchronously: retry until the API server
	// no longer prunes the new field (a dry run shows what would be stored).
	eventually(t, "new RayJob CRD schema served", func() error {
		probe := raw.DeepCopy()
		if err := k8s.Create(bg, probe, client.DryRunAll); err != nil {
			return err
		}
		if _, ok, _ := unstructured.NestedMap(probe.Object, "spec", "futureScheduling"); !ok {
			return fmt.Errorf("spec.futureScheduling pruned")
		}
		return nil
	})
	if err := k8s.Create(bg, raw); err != nil {
		t.Fatal(err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(raw.GroupVersionKind())
	if err := k8s.Get(bg, client.ObjectKeyFromObject(raw), got); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedMap(got.Object, "spec", "futureScheduling"); fmt.Sprint(v) != fmt.Sprint(top) {
		t.Errorf("spec.futureScheduling = %v, want %v", v, top)
	}
	gs, _, _ := unstructured.NestedSlice(got.Object, "spec", "rayClusterSpec", "workerGroupSpecs")
	if len(gs) != 1 || fmt.Sprint(gs[0].(map[string]any)["futureGroupPolicy"]) != fmt.Sprint(grp) {
		t.Errorf("workerGroupSpecs[0].futureGroupPolicy lost: %v", gs)
	}
	// And our admission did run on it.
	if r, _, _ := unstructured.NestedInt64(gs[0].(map[string]any), "replicas"); r != 2 {
		t.Errorf("worker replicas = %d, want 2 (not mutated?)", r)
	}
	if l := got.GetLabels()[annotations.KueueQueueName]; l != "kaiwo" {
		t.Errorf("queue label = %q, want kaiwo", l)
	}
}

func runtimeToUnstructured(obj client.Object) (*unstructured.Unstructured, error) {
	b, err := yaml.Marshal(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &u.Object); err != nil {
		return nil, err
	}
	return u, nil
}

// Scenario: with our server stopped, a plain Deployment in a Kaiwo namespace is
// still created and an annotated one is refused naming the webhook; started
// again, it works.
func TestServerDown(t *testing.T) {
	ns := "e2e-down"
	namespace(t, ns, map[string]string{"kaiwo.silogen.ai/team": "e2e-down"})
	stopWebhook()
	t.Cleanup(func() {
		if !webhookRunning() {
			if err := startWebhook(bg); err != nil {
				t.Errorf("restarting webhook: %v", err)
			}
		}
	})

	mustCreate(t, MakeDeployment("plain", ns).Obj())
	err := k8s.Create(bg, MakeDeployment("annotated", ns).Annotate(annotations.GPUs, "1").Obj())
	if err == nil {
		t.Fatal("annotated Deployment created while the webhook is down")
	}
	if !strings.Contains(err.Error(), "deployments.kaiwo.silogen.ai") {
		t.Errorf("refusal does not name the webhook: %v", err)
	}
	t.Logf("refused while down: %v", err)

	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	if err := startWebhook(ctx); err != nil {
		t.Fatal(err)
	}
	d := MakeDeployment("annotated", ns).Annotate(annotations.GPUs, "1").Obj()
	mustCreate(t, d)
	if gpuLimit(d.Spec.Template.Spec.Containers[0]) != 1 {
		t.Errorf("after restart: GPU limit %d, want 1", gpuLimit(d.Spec.Template.Spec.Containers[0]))
	}
}

// Scenario: the serving certificate is cert-manager's: the Certificate is
// Ready, the CA injector put the Secret's CA into every webhook, and our
// server serves exactly the Secret's certificate, valid for 127.0.0.1.
func TestCertificatesFromCertManager(t *testing.T) {
	var sec corev1.Secret
	if err := k8s.Get(bg, types.NamespacedName{Namespace: kaiwoNS, Name: secretTLS}, &sec); err != nil {
		t.Fatal(err)
	}
	if got := sec.Annotations["cert-manager.io/certificate-name"]; got != certName {
		t.Errorf("Secret not written by cert-manager for %s: annotations %v", certName, sec.Annotations)
	}
	if err := caInjected(bg, sec.Data["ca.crt"]); err != nil {
		t.Error(err)
	}
	served, err := servedCert("127.0.0.1:" + strconv.Itoa(webhookPort))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(sec.Data["tls.crt"])
	if block == nil || !bytes.Equal(block.Bytes, served) {
		t.Fatal("the server does not serve the certificate in Secret kaiwo-webhook-tls")
	}
	leaf, err := x509.ParseCertificate(served)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(leaf.DNSNames, "kaiwo-webhook.kaiwo-system.svc") || len(leaf.IPAddresses) == 0 {
		t.Errorf("served certificate SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	t.Logf("served certificate %q issued by %q, SANs %v %v", leaf.Subject, leaf.Issuer, leaf.DNSNames, leaf.IPAddresses)
}
