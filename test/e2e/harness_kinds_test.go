package e2e

// What the harness adds for the kinds beyond Job, RayJob, RayService and Deployment: their CRDs,
// Kueue's integrations for them, and every webhook of config/webhook pointed at our server.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/internal/testenv"
)

// kindDirs are the module sources hack/e2e-assets.sh finds for the CRDs of the other kinds Kueue
// queues, at the versions the Kueue build requires (hack/tools/kueue/go.mod): sigs.k8s.io/jobset,
// sigs.k8s.io/lws and github.com/kubeflow/training-operator. KubeRay's (RayCluster) come with
// KUBERAY_DIR.
var kindDirs = []string{"JOBSET_DIR", "LWS_DIR", "TRAINING_OPERATOR_DIR"}

// kindCRDs are the CRD files and directories of those modules, as each ships them: JobSet,
// LeaderWorkerSet, and of the training-operator's CRDs only PyTorchJob (the others are not handled).
func kindCRDs(env map[string]string) []string {
	return []string{
		filepath.Join(env["JOBSET_DIR"], "config", "components", "crd", "bases"),
		filepath.Join(env["LWS_DIR"], "config", "crd", "bases"),
		filepath.Join(env["TRAINING_OPERATOR_DIR"], "manifests", "base", "crds", "kubeflow.org_pytorchjobs.yaml"),
	}
}

// kueueFrameworks are the integrations enabled in Kueue's Configuration. LeaderWorkerSet's needs
// pod's (Kueue enables it implicitly: it admits one Workload per group of an LWS and ungates that
// group's pods); pod is listed for plain Pods anyway. Kueue needs no controller of these kinds to
// admit them: it creates the Workloads itself and unsuspends the object (an LWS has no suspend).
var kueueFrameworks = []string{
	"batch/job",
	"ray.io/rayjob",
	"ray.io/raycluster",
	"ray.io/rayservice",
	"pod",
	"deployment",
	"statefulset",
	"jobset.x-k8s.io/jobset",
	"kubeflow.org/pytorchjob",
	"leaderworkerset.x-k8s.io/leaderworkerset",
}

func frameworksYAML() string {
	var b strings.Builder
	for _, f := range kueueFrameworks {
		fmt.Fprintf(&b, "  - %s\n", f)
	}
	return b.String()
}

// localWebhooks decodes the rendered test/e2e/config, points every webhook of config/webhook at
// our server on 127.0.0.1:port (testenv.LocalWebhookURLs) and encodes it again.
func localWebhooks(rendered []byte, port int) ([]byte, error) {
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(rendered)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, err
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	if err := testenv.LocalWebhookURLs(objs, "kaiwo-webhook", port); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, u := range objs {
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes(), nil
}
