package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	"github.com/silogen/kaiwo-webhook/api/v1alpha1"
)

// TestPolicyStatus: a policy's status says it is Valid and how many namespaces it covers, goes
// Degraded when the ResourceFlavor its gpusPerNodeFrom reads is deleted (with an Event), follows
// edits in observedGeneration, is not rewritten when nothing changed, and kubectl prints its columns.
func TestPolicyStatus(t *testing.T) {
	ctx := context.Background()
	flavor := &kueue.ResourceFlavor{ObjectMeta: metav1.ObjectMeta{Name: "it-status-mi300x"},
		Spec: kueue.ResourceFlavorSpec{NodeLabels: map[string]string{"gpus-per-node": "4"}}}
	create(t, flavor)
	namespace(t, "it-status-a", map[string]string{"it-status": "yes"})
	namespace(t, "it-status-b", map[string]string{"it-status": "yes"})
	pol := &v1alpha1.KaiwoPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "it-status"},
		Spec: v1alpha1.KaiwoPolicySpec{
			Priority:          7,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"it-status": "yes"}},
			Mode:              v1alpha1.ModeEnforce,
			Defaults: &v1alpha1.PolicyDefaults{Queue: "it-status-q",
				GPUsPerNodeFrom: &v1alpha1.GPUsPerNodeSource{ResourceFlavor: flavor.Name, NodeLabel: "gpus-per-node"}},
		},
	}
	create(t, pol)
	get := func() *v1alpha1.KaiwoPolicy {
		var p v1alpha1.KaiwoPolicy
		if err := k8s.Get(ctx, types.NamespacedName{Name: pol.Name}, &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	condition := func(p *v1alpha1.KaiwoPolicy, typ string) string {
		c := meta.FindStatusCondition(p.Status.Conditions, typ)
		if c == nil {
			return "<none>"
		}
		return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
	}

	eventually(t, 60*time.Second, "status Valid, not Degraded, 2 namespaces", func() error {
		p := get()
		switch {
		case p.Status.ObservedGeneration != p.Generation:
			return fmt.Errorf("observedGeneration %d of %d", p.Status.ObservedGeneration, p.Generation)
		case !strings.HasPrefix(condition(p, v1alpha1.ConditionValid), "True/Valid"):
			return fmt.Errorf("Valid %s", condition(p, v1alpha1.ConditionValid))
		case !strings.HasPrefix(condition(p, v1alpha1.ConditionDegraded), "False/Resolved"):
			return fmt.Errorf("Degraded %s", condition(p, v1alpha1.ConditionDegraded))
		case p.Status.Namespaces != 2:
			return fmt.Errorf("namespaces %d", p.Status.Namespaces)
		}
		return nil
	})
	// The default queue has no LocalQueue in either namespace: the status says so, by name.
	eventually(t, 30*time.Second, "missing LocalQueue warning", func() error {
		w := strings.Join(get().Status.Warnings, "\n")
		if !strings.Contains(w, `"it-status-q" has no LocalQueue in namespaces it-status-a, it-status-b`) {
			return fmt.Errorf("warnings %q", w)
		}
		return nil
	})

	// Nothing changes: the status is not rewritten (no hot loop).
	rv := get().ResourceVersion
	time.Sleep(2 * time.Second)
	if now := get().ResourceVersion; now != rv {
		t.Errorf("the policy was rewritten while nothing changed: resourceVersion %s -> %s", rv, now)
	}

	if err := k8s.Delete(ctx, flavor); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "Degraded after the ResourceFlavor is deleted", func() error {
		p := get()
		d := condition(p, v1alpha1.ConditionDegraded)
		if !strings.HasPrefix(d, "True/FailOpen") || !strings.Contains(d, `ResourceFlavor "it-status-mi300x" not found`) {
			return fmt.Errorf("Degraded %s", d)
		}
		if !strings.HasPrefix(condition(p, v1alpha1.ConditionValid), "True/") {
			return fmt.Errorf("Valid %s", condition(p, v1alpha1.ConditionValid))
		}
		if !strings.Contains(strings.Join(p.Status.Warnings, "\n"), "not found") {
			return fmt.Errorf("warnings %q", p.Status.Warnings)
		}
		return nil
	})
	eventually(t, 30*time.Second, "a Warning Event on the policy", func() error {
		var evs eventsv1.EventList
		if err := k8s.List(ctx, &evs); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == "KaiwoPolicy" && e.Regarding.Name == pol.Name && e.Reason == v1alpha1.ReasonFailOpen && e.Type == "Warning" {
				return nil
			}
		}
		return fmt.Errorf("no FailOpen Event among %d", len(evs.Items))
	})

	// An edit: observedGeneration follows it.
	p := get()
	p.Spec.Priority = 8
	if err := k8s.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "observedGeneration follows the edit", func() error {
		p := get()
		if p.Generation < 2 || p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("observedGeneration %d of %d", p.Status.ObservedGeneration, p.Generation)
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionValid); c == nil || c.ObservedGeneration != p.Generation {
			return fmt.Errorf("Valid condition of generation %v", c)
		}
		return nil
	})

	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	out, err := exec.Command(kubectl, "--kubeconfig", writeKubeconfig(t), "get", "kpol", pol.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get kpol: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get kpol printed:\n%s", out)
	}
	header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	want := []string{"NAME", "MODE", "PRIORITY", "NAMESPACES", "VALID", "AGE"}
	if strings.Join(header, " ") != strings.Join(want, " ") || len(row) != len(want) {
		t.Fatalf("kubectl get kpol printed:\n%s\nwant columns %v", out, want)
	}
	if got := strings.Join(row[:5], " "); got != "it-status Enforce 8 2 True" {
		t.Errorf("kubectl get kpol row %q, want %q", got, "it-status Enforce 8 2 True")
	}
}
