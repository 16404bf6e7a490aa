package mutate

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	kftraining "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	jobsetv1alpha2 "sigs.k8s.io/jobset/api/jobset/v1alpha2"
	lwsv1 "sigs.k8s.io/lws/api/leaderworkerset/v1"
)

// brokenKind is a kind whose description the test sets.
type brokenKind struct{ info KindInfo }

func (b brokenKind) Info() KindInfo   { return b.info }
func (brokenKind) New() client.Object { return &batchv1.Job{} }
func (brokenKind) adapt(o client.Object, _ []byte) (workload, error) {
	j, err := as[*batchv1.Job](o)
	return (*job)(j), err
}

// TestNewRegistryRefusesBadKinds: a kind given twice, one without a resource or template paths, and a
// scale subresource on a kind whose adapter cannot set replicas are refused when the registry is built.
func TestNewRegistryRefusesBadKinds(t *testing.T) {
	job := jobKind{}.Info()
	noResource, noTemplates, scale := job, job, job
	noResource.Resource = ""
	noTemplates.Templates = nil
	scale.Scale = true
	daemonSet := job
	daemonSet.GVK, daemonSet.Resource = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}, "daemonsets"
	for name, tc := range map[string]struct {
		adapters []Adapter
		want     string
	}{
		"twice":          {[]Adapter{jobKind{}, rayJobKind{}, jobKind{}}, "batch/v1 Job registered twice"},
		"also unhandled": {[]Adapter{brokenKind{daemonSet}}, "apps/v1 DaemonSet is both handled and unhandled"},
		"no resource":    {[]Adapter{brokenKind{noResource}}, "resource are required"},
		"no templates":   {[]Adapter{brokenKind{noTemplates}}, "no pod template paths"},
		"scale":          {[]Adapter{brokenKind{scale}}, "cannot set replicas"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewRegistry(tc.adapters, gpuKinds()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewRegistry: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestRegistryIsAValue: each registry is its own; what Kinds returns cannot change the registry.
func TestRegistryIsAValue(t *testing.T) {
	only, err := NewRegistry([]Adapter{jobKind{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := only.For(rayv1.GroupVersion.WithKind("RayJob")); ok {
		t.Error("a registry of Jobs only handles RayJobs")
	}
	if _, _, err := only.Decode([]byte(`{"apiVersion":"ray.io/v1","kind":"RayJob"}`)); err == nil || !strings.Contains(err.Error(), "supported are batch/v1 Job") {
		t.Errorf("decoding a RayJob with a registry of Jobs: %v, want unsupported naming batch/v1 Job", err)
	}
	b := Builtin()
	ks := b.Kinds()
	ks[0].Templates[0] = "changed"
	ks[0] = Kind{}
	if k := b.Kinds()[0]; k.GVK.Kind != "Job" || k.Templates[0] != "spec.template" {
		t.Errorf("the registry changed through Kinds(): %+v", k.KindInfo)
	}
}

// TestLookupsDoNotAllocate: finding a request's kind costs no allocation.
func TestLookupsDoNotAllocate(t *testing.T) {
	r := Builtin()
	gvk := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	gr := schema.GroupResource{Group: "ray.io", Resource: "rayservices"}
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := r.For(gvk); !ok {
			t.Fatal("Deployment not found")
		}
		if _, ok := r.ForResource(gr); !ok {
			t.Fatal("rayservices not found")
		}
	}); n != 0 {
		t.Errorf("lookups allocate %v times", n)
	}
}

// TestTemplatePathsAreTheAdapters: each kind's declared template paths, which the webhook's match
// conditions read, are the paths of the templates its adapter manages, every list item included.
func TestTemplatePathsAreTheAdapters(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{}
	objects := map[string]client.Object{
		"RayJob": &rayv1.RayJob{Spec: rayv1.RayJobSpec{SubmitterPodTemplate: &tmpl, RayClusterSpec: &rayv1.RayClusterSpec{
			WorkerGroupSpecs: []rayv1.WorkerGroupSpec{{}, {}}}}},
		"RayService": &rayv1.RayService{Spec: rayv1.RayServiceSpec{RayClusterSpec: rayv1.RayClusterSpec{
			WorkerGroupSpecs: []rayv1.WorkerGroupSpec{{}, {}}}}},
		"RayCluster":      &rayv1.RayCluster{Spec: rayv1.RayClusterSpec{WorkerGroupSpecs: []rayv1.WorkerGroupSpec{{}, {}}}},
		"JobSet":          &jobsetv1alpha2.JobSet{Spec: jobsetv1alpha2.JobSetSpec{ReplicatedJobs: []jobsetv1alpha2.ReplicatedJob{{}, {}}}},
		"LeaderWorkerSet": &lwsv1.LeaderWorkerSet{Spec: lwsv1.LeaderWorkerSetSpec{LeaderWorkerTemplate: lwsv1.LeaderWorkerTemplate{LeaderTemplate: &tmpl}}},
		"PyTorchJob": &kftraining.PyTorchJob{Spec: kftraining.PyTorchJobSpec{PyTorchReplicaSpecs: map[kftraining.ReplicaType]*kftraining.ReplicaSpec{
			"Master": {}, "Worker": {}, "Other": {}}}},
	}
	index := regexp.MustCompile(`\[[0-9]+\]`)
	key := regexp.MustCompile(`\[[A-Za-z][^\]]*\]`) // a map key: {}
	for _, k := range Builtin().Kinds() {
		obj, ok := objects[k.GVK.Kind]
		if !ok {
			obj = k.New()
		}
		w, err := k.adapt(obj, nil)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		var got []string
		for _, t := range w.templates() {
			p := "" // the object itself
			if t.path != nil {
				p = key.ReplaceAllString(index.ReplaceAllString(t.path.String(), "[]"), "{}")
			}
			if len(got) == 0 || got[len(got)-1] != p {
				got = append(got, p)
			}
		}
		if _, view := w.(viewer); view && len(got) == 1 && len(k.Templates) == 1 {
			// A kind without a pod template declares its view's resources, under the view's path.
			if r, ok := strings.CutSuffix(k.Templates[0], ResourcesPath); ok && strings.HasPrefix(r, got[0]+".") {
				continue
			}
		}
		if !slices.Equal(got, k.Templates) {
			t.Errorf("%s: the adapter's templates are at %q, the kind declares %q", k, got, k.Templates)
		}
		var labels []string
		if cm, ok := w.(createdMeta); ok {
			_, p := cm.createdMeta()
			labels = append(labels, p.Child("labels").String())
		}
		if !slices.Equal(labels, k.QueueLabels) {
			t.Errorf("%s: the adapter's queue labels are at %q, the kind declares %q", k, labels, k.QueueLabels)
		}
	}
}

// TestOwnersOfEachKind: a Job's owner is the CronJob, whose controller creates Jobs; a Pod's are every
// handled kind and controlled kind whose controller makes Pods, not the CronJob, nor the kinds whose
// controllers make parts of them (a RayJob's RayCluster, a JobSet's Jobs, a LeaderWorkerSet's
// StatefulSets, a TrainJob's JobSet), nor the Pod itself; a kind no controller creates from a checked
// template has none.
func TestOwnersOfEachKind(t *testing.T) {
	want := map[string][]string{
		"Job": {"batch/v1/CronJob"},
		"Pod": {"batch/v1/Job", "apps/v1/Deployment", "apps/v1/StatefulSet", "ray.io/v1/RayCluster", "apps/v1/ReplicaSet",
			"kubeflow.org/v1/PyTorchJob"},
	}
	for _, k := range Builtin().Kinds() {
		want := want[k.GVK.Kind]
		got := k.Owners()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: owners %q, want %q", k, got, want)
		}
	}
}

// TestControlledTemplatePathsAreTheReaders: the template paths of the unhandled kinds a handled workload's
// controller creates are those ValidateUnhandledUpdate reads.
func TestControlledTemplatePathsAreTheReaders(t *testing.T) {
	raws := map[string]string{
		"RayCluster":  `{"spec":{"headGroupSpec":{},"workerGroupSpecs":[{},{}]}}`,
		"ReplicaSet":  `{"spec":{}}`,
		"StatefulSet": `{"spec":{}}`,
		"Pod":         `{"spec":{}}`,
	}
	index := regexp.MustCompile(`\[[0-9]+\]`)
	n := 0
	for _, u := range Builtin().Unhandled() {
		if u.Controlled != (u.controlled != nil) {
			t.Errorf("%s: Controlled is %v, yet it has a reader: %v", u.GVK.Kind, u.Controlled, u.controlled != nil)
		}
		if u.controlled == nil {
			continue
		}
		if _, ok := raws[u.GVK.Kind]; !ok {
			t.Errorf("%s: controlled, with no sample here to read", u.GVK.Kind)
			continue
		}
		n++
		w, err := u.controlled([]byte(raws[u.GVK.Kind]))
		if err != nil {
			t.Fatalf("%s: %v", u.GVK.Kind, err)
		}
		var got []string
		for _, t := range w.templates() {
			p := "" // the object itself (a Pod)
			if t.path != nil {
				p = index.ReplaceAllString(t.path.String(), "[]")
			}
			if len(got) == 0 || got[len(got)-1] != p {
				got = append(got, p)
			}
		}
		if !slices.Equal(got, u.Templates) {
			t.Errorf("%s: read at %q, declared %q", u.GVK.Kind, got, u.Templates)
		}
	}
	if n == 0 {
		t.Error("no controlled kind was read")
	}
}
