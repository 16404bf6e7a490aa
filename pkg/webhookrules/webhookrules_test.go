package webhookrules_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/webhookrules"
)

// TestCheckedInFilesAreGenerated: the webhook configurations in config/webhook and the chart are what the
// built-in registry renders; a kind, operation or template path added to one and not the other fails here
// (run `make generate`).
func TestCheckedInFilesAreGenerated(t *testing.T) {
	files, err := webhookrules.Files(mutate.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("%d files, want the 4 webhook configurations", len(files))
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("%s is not what the registry generates; run `make generate` (-generated,+checked in):\n%s", path, diff)
		}
	}
}

// TestEveryKindHasItsRules: each handled kind has a mutating and a validating rule with its group,
// version, resource and operations, and each unhandled kind a validating one; the owners are in the
// controller condition.
func TestEveryKindHasItsRules(t *testing.T) {
	r := mutate.Builtin()
	m, err := webhookrules.Mutating(r, webhookrules.Kustomize)
	if err != nil {
		t.Fatal(err)
	}
	v, err := webhookrules.Validating(r, webhookrules.Kustomize)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range r.Kinds() {
		ops := "[CREATE]"
		if k.Update {
			ops = "[CREATE, UPDATE]"
		}
		group := k.GVK.Group
		if group == "" {
			group = `""`
		}
		want := "- name: " + k.Resource + ".kaiwo.silogen.ai\n"
		rule := "  - apiGroups: [" + group + "]\n    apiVersions: [" + k.GVK.Version + "]\n    operations: " + ops + "\n    resources: [" + k.Resource + "]\n"
		if !strings.Contains(string(m), want) || !strings.Contains(string(m), rule) {
			t.Errorf("%s: no mutating webhook %q with rule\n%s", k, want, rule)
		}
		if !strings.Contains(string(v), "- name: "+k.Resource+".validate.kaiwo.silogen.ai\n") {
			t.Errorf("%s: no validating webhook", k)
		}
		if got := strings.Contains(string(v), "resources: ["+k.Resource+"/scale]"); got != k.Scale {
			t.Errorf("%s: a validating rule for its scale subresource: %v, want %v", k, got, k.Scale)
		}
		for _, p := range k.Templates {
			head, _, _ := strings.Cut(strings.TrimSuffix(p, mutate.ResourcesPath), "[]")
			if head, _, _ = strings.Cut(head, "{}"); !strings.Contains(string(m), "object."+head) {
				t.Errorf("%s: the mutating condition does not read %s", k, p)
			}
		}
	}
	for _, k := range r.Kinds() {
		for name, y := range map[string][]byte{"mutating": m, "validating": v} {
			hook := webhookOf(y, k.Resource+map[string]string{"mutating": ".kaiwo.silogen.ai", "validating": ".validate.kaiwo.silogen.ai"}[name])
			owners := k.Owners()
			quoted := make([]string, len(owners))
			for i, o := range owners {
				quoted[i] = "'" + o + "'"
			}
			has := strings.Contains(hook, "- name: not-from-a-controller\n") && strings.Contains(hook, "in ["+strings.Join(quoted, ", ")+"]")
			if has != (len(owners) > 0) {
				t.Errorf("%s: %s webhook keeps away its owners' objects (%q): %v, want %v", k, name, owners, has, len(owners) > 0)
			}
			// An owned object's UPDATE by a controller is kept away only where the kind is SkipControllerUpdates (a
			// Pod); a team user's is always sent.
			if has && strings.Contains(hook, "oldObject == null &&") == k.SkipControllerUpdates {
				t.Errorf("%s: %s webhook keeps away a controller's UPDATE of an owned object: %v, want %v", k, name, !k.SkipControllerUpdates, k.SkipControllerUpdates)
			}
		}
		hook := webhookOf(v, k.Resource+".validate.kaiwo.silogen.ai")
		for _, p := range k.QueueLabels {
			for _, root := range []string{"object", "oldObject"} {
				if !strings.Contains(hook, "'kueue.x-k8s.io/queue-name' in "+root+"."+p) {
					t.Errorf("%s: the validating condition does not read the queue label at %s.%s", k, root, p)
				}
			}
		}
	}
	for _, u := range r.Unhandled() {
		if !strings.Contains(string(v), "- name: "+u.Resource+".validate.kaiwo.silogen.ai\n") {
			t.Errorf("%s: no validating webhook", u.GVK)
		}
	}
	for _, o := range r.Owners() {
		if !strings.Contains(string(v), "'"+o+"'") {
			t.Errorf("owner %s is not in the controller condition", o)
		}
	}
}

// TestTemplatePaths: each kind of path gives its list; a path with two list levels is refused.
func TestTemplatePaths(t *testing.T) {
	for path, want := range map[string]string{
		"":              "(has(object.spec) ? [object] : [])",
		"spec.template": "(has(object.spec) && has(object.spec.template) ? [object.spec.template] : [])",
		"spec.replicatedJobs[].template.spec.template": "object.spec.replicatedJobs.map(g, has(g.template) && has(g.template.spec) && has(g.template.spec.template), g.template.spec.template)",
		"spec.pytorchReplicaSpecs{}.template":          "object.spec.pytorchReplicaSpecs.map(k, has(object.spec.pytorchReplicaSpecs[k].template), object.spec.pytorchReplicaSpecs[k].template)",
	} {
		got, err := webhookrules.TemplatesGPU([]string{path})
		if err != nil || !strings.Contains(got, want) {
			t.Errorf("%q: %v, want it to contain %s, got\n%s", path, err, want, got)
		}
	}
	if _, err := webhookrules.TemplatesGPU([]string{"spec.a[].b[].template"}); err == nil {
		t.Error("two list levels: want an error")
	}
}

// webhookOf is the text of the webhook named name in a rendered configuration, up to the next one.
func webhookOf(y []byte, name string) string {
	_, rest, ok := strings.Cut(string(y), "\n- name: "+name+"\n")
	if !ok {
		return ""
	}
	hook, _, _ := strings.Cut(rest, "\n- name: ") // match conditions are indented: "  - name: "
	return hook
}
