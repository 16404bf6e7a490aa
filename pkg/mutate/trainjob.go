package mutate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trainer "github.com/silogen/kaiwo-webhook/internal/trainerapi"
)

// trainJob adapts a trainer.kubeflow.org/v1alpha1 TrainJob, which has no pod template: the pods are the
// TrainingRuntime's, with spec.trainer (image, command, args, env, resourcesPerNode, numNodes) and the
// TrainJob's runtime patches applied. The adapter shows the features one template, a view of the trainer's
// node pod: its container "node" is spec.trainer (env and resources are spec.trainer.env and
// spec.trainer.resourcesPerNode), its pod-level fields (volumes, mounts, tolerations, nodeSelector,
// affinity, image pull secrets, pod labels and annotations) are Kaiwo's own runtime patch (manager
// kaiwo.silogen.ai/webhook, replicated job "node"). sync writes the view back after the features ran and
// denies what neither can hold.
type trainJob struct {
	*trainer.TrainJob
	view *corev1.PodTemplateSpec
}

var (
	_ workload = (*trainJob)(nil)
	_ viewer   = (*trainJob)(nil)
)

// The trainer's names: the replicated job and container of the training nodes; the runtime patch managers.
const (
	trainerNode       = "node"
	kaiwoPatchManager = "kaiwo.silogen.ai/webhook"
	kueuePatchManager = "kueue.x-k8s.io/manager"
)

// trainJobKind registers trainer.kubeflow.org/v1alpha1 TrainJobs: mutated on CREATE. It has no pod
// template: the webhook rules' match conditions read spec.trainer.resourcesPerNode.
type trainJobKind struct{}

func (trainJobKind) Info() KindInfo {
	return KindInfo{GVK: trainer.SchemeGroupVersion.WithKind(trainer.TrainJobKind), Resource: "trainjobs",
		Templates: []string{"spec.trainer.resourcesPerNode" + ResourcesPath}}
}

func (trainJobKind) New() client.Object { return &trainer.TrainJob{} }

func (trainJobKind) adapt(o client.Object, _ []byte) (workload, error) {
	j, err := as[*trainer.TrainJob](o)
	if err != nil {
		return nil, err
	}
	return newTrainJob(j), nil
}

var (
	trainerPath        = field.NewPath("spec", "trainer")
	runtimePatchesPath = field.NewPath("spec", "runtimePatches")
)

func newTrainJob(j *trainer.TrainJob) *trainJob {
	c := corev1.Container{Name: trainerNode}
	if tr := j.Spec.Trainer; tr != nil {
		c.Image = ptr.Deref(tr.Image, "")
		c.Command, c.Args = tr.Command, tr.Args
		c.Env = append([]corev1.EnvVar(nil), tr.Env...)
		if tr.ResourcesPerNode != nil {
			c.Resources = *tr.ResourcesPerNode.DeepCopy()
		}
	}
	v := &corev1.PodTemplateSpec{}
	if p := kaiwoPodPatch(j, false); p != nil {
		if p.Metadata != nil {
			v.Labels, v.Annotations = p.Metadata.Labels, p.Metadata.Annotations
		}
		if s := p.Spec; s != nil {
			v.Spec.Volumes, v.Spec.Tolerations, v.Spec.NodeSelector, v.Spec.Affinity = s.Volumes, s.Tolerations, s.NodeSelector, s.Affinity
			v.Spec.ImagePullSecrets, v.Spec.ServiceAccountName, v.Spec.SecurityContext = s.ImagePullSecrets, ptr.Deref(s.ServiceAccountName, ""), s.SecurityContext
			v.Spec.SchedulingGates = s.SchedulingGates
			for _, cp := range s.Containers {
				if cp.Name == trainerNode {
					c.VolumeMounts, c.SecurityContext = cp.VolumeMounts, cp.SecurityContext
				}
			}
		}
		v = v.DeepCopy()
	}
	v.Spec.Containers = []corev1.Container{c}
	return &trainJob{TrainJob: j, view: v}
}

func (j *trainJob) object() client.Object { return j.TrainJob }

func (j *trainJob) templates() []template { return []template{{path: trainerPath, spec: j.view}} }

// pods: spec.trainer.numNodes (1 when unset; a TrainJob with GPUs must set it, see viewRules).
func (j *trainJob) pods() []pods {
	n := int64(1)
	if tr := j.Spec.Trainer; tr != nil && tr.NumNodes != nil {
		n = int64(*tr.NumNodes)
	}
	return []pods{{max(n, 0), fmt.Sprintf("%s=%d", trainerPath.Child("numNodes"), n)}}
}

func (j *trainJob) check() field.ErrorList { return nil }

// plan places s.gpus over the nodes: numNodes x GPUs per node, planned as Ray's workers.
func (j *trainJob) plan(s *settings) (plan, field.ErrorList) {
	cur := int32(1)
	if tr := j.Spec.Trainer; tr != nil && tr.NumNodes != nil {
		cur = *tr.NumNodes
	}
	p, n, errs := planGroup(s, nil, j.templates()[0], cur)
	if len(errs) > 0 || n == 0 {
		return p, errs
	}
	if j.Spec.Trainer == nil {
		j.Spec.Trainer = &trainer.Trainer{}
	}
	if ptr.Deref(j.Spec.Trainer.NumNodes, -1) != n {
		j.Spec.Trainer.NumNodes = ptr.To(n)
		p.notes = append(p.notes, fmt.Sprintf("%s set to %d", trainerPath.Child("numNodes"), n))
	}
	return p, nil
}

// queue suspends the TrainJob (spec.suspend) until Kueue admits it; Kueue's own webhook adds its runtime patch.
func (j *trainJob) queue(*settings) ([]string, field.ErrorList) {
	if ptr.Deref(j.Spec.Suspend, false) {
		return nil, nil
	}
	j.Spec.Suspend = ptr.To(true)
	return []string{"spec.suspend=true until Kueue admits it"}, nil
}

func (j *trainJob) suspended() bool { return ptr.Deref(j.Spec.Suspend, false) }
