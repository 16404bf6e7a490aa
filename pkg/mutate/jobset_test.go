package mutate_test

import (
	"math"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	jobsetv1alpha2 "sigs.k8s.io/jobset/api/jobset/v1alpha2"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// TestJobSetPlanned: kaiwo.silogen.ai/gpus is planned per node over the pods of the GPU replicated job, as
// Ray workers are: all on one pod when they fit a node, else the largest divisor that fits; the shape the
// user chose (one Job of several pods, or Jobs of one pod each) is kept.
func TestJobSetPlanned(t *testing.T) {
	cases := map[string]struct {
		js                           *jobsetv1alpha2.JobSet
		replicas, parallelism, compl int32 // of the GPU replicated job after the mutation; 0: unset
		gpus, workers, perWorker     int32
		rjob                         int
	}{
		"Jobs of one pod: replicas": {js: MakeJobSet("s", "ml", "workers").Annotate(annotations.GPUs, "32").Obj(),
			replicas: 4, gpus: 32, workers: 4, perWorker: 8},
		"fits one node": {js: MakeJobSet("s", "ml", "workers").Annotate(annotations.GPUs, "4").Obj(),
			gpus: 4, workers: 1, perWorker: 4},
		"one indexed Job of several pods: parallelism and completions": {js: MakeJobSet("s", "ml", "workers").Shape(0, 1, 2, 2).Annotate(annotations.GPUs, "24").Obj(),
			replicas: 1, parallelism: 3, compl: 3, gpus: 24, workers: 3, perWorker: 8},
		"Jobs of two pods: replicas over them": {js: MakeJobSet("s", "ml", "workers").Shape(0, 2, 2, 0).Annotate(annotations.GPUs, "48").Obj(),
			replicas: 3, parallelism: 2, gpus: 48, workers: 6, perWorker: 8},
		"the replicated job with the most pods, not the driver": {js: MakeJobSet("s", "ml", "driver", "workers").Shape(1, 2, 0, 0).Annotate(annotations.GPUs, "16").Obj(),
			replicas: 2, gpus: 16, workers: 2, perWorker: 8, rjob: 1},
		"the one that asks for GPUs": {js: MakeJobSet("s", "ml", "driver", "workers").Shape(0, 3, 0, 0).Resource(1, amd, "4").Annotate(annotations.GPUs, "16").Obj(),
			replicas: 4, gpus: 16, workers: 4, perWorker: 4, rjob: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, _ := run(t, tc.js, policy.Default())
			js := out.(*jobsetv1alpha2.JobSet)
			rj := js.Spec.ReplicatedJobs[tc.rjob]
			if rj.Replicas != tc.replicas || ptr.Deref(rj.Template.Spec.Parallelism, 0) != tc.parallelism || ptr.Deref(rj.Template.Spec.Completions, 0) != tc.compl {
				t.Errorf("replicas %d, parallelism %v, completions %v; want %d, %d, %d", rj.Replicas, ptr.Deref(rj.Template.Spec.Parallelism, 0),
					ptr.Deref(rj.Template.Spec.Completions, 0), tc.replicas, tc.parallelism, tc.compl)
			}
			c := rj.Template.Spec.Template.Spec.Containers[0]
			wantGPUs(t, c, amd, int64(tc.perWorker), "", "")
			env := envOf(c)
			if env[mutate.EnvNumGPUs] != itoa(tc.gpus) || env[mutate.EnvNumReplicas] != itoa(tc.workers) || env[mutate.EnvNumGPUsPerReplica] != itoa(tc.perWorker) {
				t.Errorf("env %v, want NUM_GPUS=%d NUM_REPLICAS=%d NUM_GPUS_PER_REPLICA=%d", env, tc.gpus, tc.workers, tc.perWorker)
			}
			if !ptr.Deref(js.Spec.Suspend, false) || js.Labels[annotations.KueueQueueName] != "kaiwo" {
				t.Errorf("suspend %v, queue label %q: want queued in kaiwo", js.Spec.Suspend, js.Labels[annotations.KueueQueueName])
			}
			again, warnings := run(t, js, policy.Default())
			if len(warnings) > 0 || !apiequality.Semantic.DeepEqual(again, js) {
				t.Errorf("a second pass changed the JobSet or warned: %v", warnings)
			}
		})
	}
}

// TestJobSetAttacks: what a team user tries with a JobSet in a team-ml namespace, on CREATE.
func TestJobSetAttacks(t *testing.T) {
	pol := teamML(t)
	nine := func() *JobSetWrapper { return MakeJobSet("s", "ml", "a", "b", "c", "d", "e", "f", "g", "h", "i") }
	runCreateAttacks(t, map[string]createAttack{
		"GPUs in every replicated job": {obj: func() client.Object {
			return MakeJobSet("s", "ml", "driver", "workers").Resource(0, amd, "1").Shape(1, 4, 0, 0).Resource(1, amd, "8").Obj()
		}, want: []string{"33 GPUs", "spec.replicatedJobs[0].template.spec.template", "spec.replicatedJobs[1].replicas=4", "maxGpusPerWorkload (32)"}},
		"replicas x parallelism": {obj: func() client.Object {
			return MakeJobSet("s", "ml", "workers").Shape(0, 3, 2, 0).Resource(0, amd, "8").Obj()
		}, want: []string{"48 GPUs", "spec.replicatedJobs[0].replicas=3 x spec.replicatedJobs[0].template.spec.parallelism=2", "maxGpusPerWorkload"}},
		"completions bound parallelism": {obj: func() client.Object {
			return MakeJobSet("s", "ml", "workers").Shape(0, 1, 100, 4).Resource(0, amd, "8").Obj()
		}},
		"GPUs on an init container": {obj: func() client.Object {
			js := MakeJobSet("s", "ml", "workers").Shape(0, 4, 0, 0).Obj()
			ps := &js.Spec.ReplicatedJobs[0].Template.Spec.Template.Spec
			ps.InitContainers = []corev1.Container{{Name: "warm", Image: "x", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{amd: resource.MustParse("16")}}}}
			return js
		}, want: []string{"64 GPUs", "maxGpusPerWorkload"}},
		"replicas x parallelism x GPUs that overflow an int64": {obj: func() client.Object {
			return MakeJobSet("s", "ml", "workers").Shape(0, math.MaxInt32, math.MaxInt32, 0).Resource(0, amd, "8").Obj()
		}, want: []string{"spec.replicatedJobs[0]", "do not fit a 64-bit count"}},
		"a plan over more pods than an int32": {obj: func() client.Object {
			return MakeJobSet("s", "ml", "workers").Shape(0, math.MaxInt32, 4, 0).Annotate(annotations.GPUs, "8").Obj()
		}, want: []string{"spec.replicatedJobs[0]", "at most 2147483647 workers"}},
		"a Job shape the plan cannot divide": {obj: func() client.Object {
			return MakeJobSet("s", "ml", "workers").Shape(0, 2, 3, 0).Annotate(annotations.GPUs, "16").Obj()
		}, want: []string{"spec.replicatedJobs[0].template.spec.parallelism", "3 pods", "2 workers"}},
		"nine replicated jobs": {obj: func() client.Object { return nine().Resource(8, amd, "1").Obj() },
			want: []string{"spec.replicatedJobs", "must have at most 8 items"}},
		"queueing none": {obj: func() client.Object {
			return MakeJobSet("s", "ml", "w").Resource(0, amd, "8").Annotate(annotations.Queueing, "none").Obj()
		}, want: []string{"kaiwo.silogen.ai/queueing", "Enforce"}},
		"a bad gpus annotation": {obj: func() client.Object { return MakeJobSet("s", "ml", "w").Annotate(annotations.GPUs, "eight").Obj() },
			want: []string{"metadata.annotations[kaiwo.silogen.ai/gpus]", `"eight"`}},
		"a nvidia GPU where vendors are amd": {obj: func() client.Object { return MakeJobSet("s", "ml", "a", "b").Resource(1, nvidia, "1").Obj() },
			want: []string{"spec.replicatedJobs[1].template.spec.template.spec.containers[0]", "allowedVendors"}},
	}, pol)
}

// TestJobSetUpdate: the stored JobSet may not grow past the limit through its replicas or its Jobs'
// parallelism, and the policy's TTL reaches it.
func TestJobSetUpdate(t *testing.T) {
	pol := teamML(t)
	stored, err := admit(t, MakeJobSet("s", "ml", "workers").Annotate(annotations.GPUs, "16").Obj(), pol)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := stored.(*jobsetv1alpha2.JobSet).Spec.TTLSecondsAfterFinished; ptr.Deref(ttl, 0) != 3600 {
		t.Errorf("ttlSecondsAfterFinished = %v, want the policy's 3600", ttl)
	}
	grow := map[string]func(js *jobsetv1alpha2.JobSet){
		"replicas": func(js *jobsetv1alpha2.JobSet) { js.Spec.ReplicatedJobs[0].Replicas = 5 },
		"parallelism": func(js *jobsetv1alpha2.JobSet) {
			js.Spec.ReplicatedJobs[0].Template.Spec.Parallelism = ptr.To[int32](3)
		},
		"two more replicated jobs": func(js *jobsetv1alpha2.JobSet) {
			js.Spec.ReplicatedJobs = append(js.Spec.ReplicatedJobs, *js.Spec.ReplicatedJobs[0].DeepCopy(), *js.Spec.ReplicatedJobs[0].DeepCopy())
		},
		"replicas to 2^31-1": func(js *jobsetv1alpha2.JobSet) { js.Spec.ReplicatedJobs[0].Replicas = math.MaxInt32 },
		"parallelism to 2^31-1": func(js *jobsetv1alpha2.JobSet) {
			js.Spec.ReplicatedJobs[0].Template.Spec.Parallelism = ptr.To[int32](math.MaxInt32)
		},
	}
	for name, edit := range grow {
		t.Run(name, func(t *testing.T) {
			js := stored.DeepCopyObject().(*jobsetv1alpha2.JobSet)
			edit(js)
			wantDenied(t, validate(js, stored, pol), "maxGpusPerWorkload")
		})
	}
	shrunk := stored.DeepCopyObject().(*jobsetv1alpha2.JobSet)
	shrunk.Spec.ReplicatedJobs[0].Replicas = 1
	if err := validate(shrunk, stored, pol); err != nil {
		t.Errorf("shrinking: %v", err)
	}
}

// TestJobsOfAJobSet: the Jobs a JobSet creates are a part of it: the mutation leaves them alone (Kueue
// queues the JobSet), the JobSet controller creates them, and a team user who writes the owner reference by
// hand gets no GPUs, nor grows such a Job later.
func TestJobsOfAJobSet(t *testing.T) {
	pol := teamML(t)
	spec := batchv1.JobSpec{Parallelism: ptr.To[int32](2), Template: MakeJob("x", "ml").Resource(0, amd, "8").Obj().Spec.Template}
	j := MakeJobSetJob("s-workers-0", "ml", spec)
	out, err := mutateIn(mutate.Input{Object: j, Policy: pol, User: jobSetController})
	if err != nil || out.Managed || !apiequality.Semantic.DeepEqual(out.Object, j) {
		t.Errorf("the JobSet's Job was mutated (err %v)", err)
	}
	if err := validateAs(j, nil, pol, jobSetController); err != nil {
		t.Errorf("created by the JobSet controller: %v", err)
	}
	wantDenied(t, validate(j, nil, pol), "batch/v1 Job is a part of a jobset.x-k8s.io/v1alpha2 JobSet", "exempts it only when a controller makes the request", user)
	grown := j.DeepCopy()
	grown.Spec.Parallelism = ptr.To[int32](5)
	wantDenied(t, validate(grown, j, pol), "spec.parallelism=5", "maxGpusPerWorkload")
	if err := validateAs(grown, j, pol, jobSetController); err != nil {
		t.Errorf("the JobSet controller's update: %v", err)
	}
	orphaned := j.DeepCopy()
	orphaned.OwnerReferences = nil
	wantDenied(t, validate(orphaned, j, pol), "Enforce")
	if err := validateAs(orphaned, j, pol, "system:serviceaccount:kube-system:generic-garbage-collector"); err != nil {
		t.Errorf("the garbage collector orphans it: %v", err)
	}
	// A plain Job is still a workload of its own.
	if _, err := admit(t, MakeJob("j", "ml").Resource(0, amd, "8").Obj(), pol); err != nil {
		t.Errorf("a plain Job: %v", err)
	}
}
