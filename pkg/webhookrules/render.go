package webhookrules

import (
	"fmt"
	"strings"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

// Target is where a webhook configuration is installed from.
type Target int

const (
	// Kustomize is config/webhook: names and namespace as its kustomization sets them.
	Kustomize Target = iota
	// Chart is charts/kaiwo-webhook/templates: names, namespace and failurePolicy from the release and values.
	Chart
)

// The files Files generates, from the repository root.
const (
	KustomizeMutating   = "config/webhook/mutating_webhook.yaml"
	KustomizeValidating = "config/webhook/validating_webhook.yaml"
	ChartMutating       = "charts/kaiwo-webhook/templates/mutatingwebhook.yaml"
	ChartValidating     = "charts/kaiwo-webhook/templates/validatingwebhook.yaml"
)

const generated = "Generated from the kind registry (mutate.Builtin) by `make generate` (pkg/webhookrules);\n" +
	"do not edit: pkg/webhookrules's test fails when this file differs from what the registry generates."

const mutatingHeader = `One webhook per handled workload kind, each with its own rules and match condition.

failurePolicy Fail: the match conditions below keep every plain object away from the webhook, so Fail
only affects objects that asked for Kaiwo (a kaiwo.silogen.ai/ annotation or the managed label) or that
request GPUs. Ignore would let such an object through unmutated while the webhook is down: an opted-in
GPU Job would run without its queue label, outside Kueue's quota.

The match condition is one OR (conditions are ANDed), true when the object carries a kaiwo.silogen.ai/
annotation, or it carries the label kaiwo.silogen.ai/managed: "true", or a container or init container of
one of its pod templates asks for a GPU resource in its limits or requests (amd.com/ or nvidia.com/
gpu... or mig-..., as the server counts GPUs: nvidia.com/mig-1g.10gb, nvidia.com/gpu.shared), or a device
claim of dynamic resource allocation (resources.claims). The last lets the server manage GPU workloads in
Enforce namespaces; it passes the ones in OptIn namespaces through untouched. Every field access is
guarded with has(): an evaluation error would deny the request under Fail.`

const validatingHeader = `Validating webhooks: they see the final object, after every mutating webhook, and refuse what the
namespace's KaiwoPolicy does not allow; they never change anything. failurePolicy Fail: a rule that is
skipped while the server is down is not a rule.

kaiwopolicies: the checks the KaiwoPolicy CRD schema cannot express.

The workload webhooks (path /validate) cover CREATE and UPDATE of every kind the mutating webhooks handle,
the scale subresource of those that have one, and the GPU-capable kinds not handled yet: the server denies
them in Enforce namespaces when they ask for GPUs, unless a workload it checked controls them (an UPDATE
of a controlled kind, such as a RayCluster or ReplicaSet, is held to its workload's rules).

kaiwo-managed-gpu-or-queued is the mutating webhooks' condition, widened so that a later change cannot
step outside it: it is true when the object carries any kaiwo.silogen.ai/ annotation or label, or the
Kueue label kueue.x-k8s.io/queue-name (a queue change is a rule, managed or not), or on UPDATE the old
object did (removing the keys in the same update that breaks a rule does not hide it), or a container or
init container of one of its pod templates asks for a GPU resource (amd.com/ or nvidia.com/ gpu... or
mig-..., as the server counts GPUs: MIG slices and time-sliced GPUs too), or a device claim of dynamic
resource allocation (resources.claims). Every field access is guarded with has(): an evaluation error
would deny the request under Fail.`

const chartNote = `In the chart, the KaiwoPolicy webhook always fails closed; the workload webhooks use
.Values.failurePolicy (default Fail).`

// Mutating is the MutatingWebhookConfiguration of r's kinds for target t.
func Mutating(r *mutate.Registry, t Target) ([]byte, error) {
	hooks, err := mutatingWebhooks(r)
	if err != nil {
		return nil, err
	}
	return render(t, "MutatingWebhookConfiguration", mutatingHeader, hooks), nil
}

// Validating is the ValidatingWebhookConfiguration of r's kinds for target t.
func Validating(r *mutate.Registry, t Target) ([]byte, error) {
	hooks, err := validatingWebhooks(r)
	if err != nil {
		return nil, err
	}
	return render(t, "ValidatingWebhookConfiguration", validatingHeader, hooks), nil
}

// Files are the four generated files of r, by path from the repository root.
func Files(r *mutate.Registry) (map[string][]byte, error) {
	out := map[string][]byte{}
	for path, f := range map[string]func() ([]byte, error){
		KustomizeMutating:   func() ([]byte, error) { return Mutating(r, Kustomize) },
		KustomizeValidating: func() ([]byte, error) { return Validating(r, Kustomize) },
		ChartMutating:       func() ([]byte, error) { return Mutating(r, Chart) },
		ChartValidating:     func() ([]byte, error) { return Validating(r, Chart) },
	} {
		b, err := f()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[path] = b
	}
	return out, nil
}

func render(t Target, kind, header string, hooks []webhook) []byte {
	var b strings.Builder
	if t == Chart {
		fmt.Fprintf(&b, "{{- /*\n%s\n\n%s\n\n%s\n*/ -}}\n", generated, header, chartNote)
		fmt.Fprintf(&b, "apiVersion: admissionregistration.k8s.io/v1\nkind: %s\nmetadata:\n", kind)
		b.WriteString("  name: {{ include \"kaiwo-webhook.fullname\" . }}\n  labels:\n    {{- include \"kaiwo-webhook.labels\" . | nindent 4 }}\n")
		b.WriteString("  annotations:\n    cert-manager.io/inject-ca-from: {{ include \"kaiwo-webhook.injectCAFrom\" . }}\n")
	} else {
		b.WriteString(comment("", generated+"\n\n"+header))
		fmt.Fprintf(&b, "apiVersion: admissionregistration.k8s.io/v1\nkind: %s\nmetadata:\n", kind)
		b.WriteString("  name: kaiwo-webhook\n  annotations:\n    cert-manager.io/inject-ca-from: kaiwo-system/kaiwo-webhook\n")
	}
	b.WriteString("webhooks:\n")
	for _, w := range hooks {
		writeWebhook(&b, t, w)
	}
	return []byte(b.String())
}

func writeWebhook(b *strings.Builder, t Target, w webhook) {
	fmt.Fprintf(b, "- name: %s\n", w.name)
	if t == Chart {
		fmt.Fprintf(b, "  {{- include \"kaiwo-webhook.webhookCommon\" (list $ %q) | nindent 2 }}\n", w.path)
	} else {
		fmt.Fprintf(b, "  admissionReviewVersions: [v1]\n  clientConfig:\n    service:\n      name: kaiwo-webhook\n      namespace: kaiwo-system\n      path: %s\n", w.path)
	}
	b.WriteString("  rules:\n")
	b.WriteString(comment("  ", w.comment))
	group := w.group
	if group == "" {
		group = `""`
	}
	scope := "Namespaced"
	if w.cluster {
		scope = "Cluster"
	}
	fmt.Fprintf(b, "  - apiGroups: [%s]\n    apiVersions: [%s]\n    operations: [%s]\n    resources: [%s]\n    scope: %s\n",
		group, w.version, strings.Join(w.ops, ", "), w.resource, scope)
	if t == Kustomize {
		b.WriteString("  matchPolicy: Equivalent\n")
	}
	if !w.cluster {
		if t == Chart {
			b.WriteString("  {{- include \"kaiwo-webhook.namespaceSelector\" . | nindent 2 }}\n")
		} else {
			b.WriteString("  namespaceSelector:\n    matchExpressions:\n    - key: kubernetes.io/metadata.name\n      operator: NotIn\n      values: [kube-system, kaiwo-system]\n")
		}
	}
	if len(w.conditions) > 0 {
		b.WriteString("  matchConditions:\n")
		for _, c := range w.conditions {
			fmt.Fprintf(b, "  - name: %s\n    expression: |\n", c.name)
			for _, line := range strings.Split(strings.TrimRight(c.expr, "\n"), "\n") {
				b.WriteString("      " + line + "\n")
			}
		}
	}
	if t == Chart && !w.failClosed {
		b.WriteString("  failurePolicy: {{ .Values.failurePolicy }}\n")
	} else {
		b.WriteString("  failurePolicy: Fail\n")
	}
	if t == Kustomize {
		b.WriteString("  sideEffects: None\n  timeoutSeconds: 5\n")
	}
	if w.reinvoke {
		b.WriteString("  reinvocationPolicy: IfNeeded\n")
	}
}

// comment is text as YAML comment lines at indent, paragraphs kept, wrapped at 80 columns.
func comment(indent, text string) string {
	if text == "" {
		return ""
	}
	var b strings.Builder
	for _, para := range strings.Split(text, "\n\n") {
		if b.Len() > 0 {
			b.WriteString(indent + "#\n")
		}
		line := ""
		for _, word := range strings.Fields(para) {
			if line != "" && len(indent)+2+len(line)+1+len(word) > 80 {
				b.WriteString(indent + "# " + line + "\n")
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += word
		}
		b.WriteString(indent + "# " + line + "\n")
	}
	return b.String()
}
