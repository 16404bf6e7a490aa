package mutate_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// withAnnotations sets (value != "") or removes (value == "-") annotations of a JSON object.
func withAnnotations(raw []byte, set map[string]string) []byte {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var doc map[string]any
	if d.Decode(&doc) != nil || doc == nil {
		return raw
	}
	meta, _ := doc["metadata"].(map[string]any)
	if meta == nil {
		return raw
	}
	annots, _ := meta["annotations"].(map[string]any)
	if annots == nil {
		annots = map[string]any{}
	}
	for k, v := range set {
		switch v {
		case "":
		case "-":
			delete(annots, k)
		default:
			annots[k] = v
		}
	}
	meta["annotations"] = annots
	out, err := json.Marshal(doc)
	if err != nil {
		return raw
	}
	return out
}

// FuzzUpdate: an object is created with one set of annotations (or, where that is denied, was stored
// before the policy), then updated as kubectl apply sends it (the live object with changed
// annotations). Properties: AdmitUpdate never panics and denies only with a *mutate.Denial; Jobs and
// RayJobs are not mutated on UPDATE; an allowed update of a serving kind applies, decodes to the
// object Mutate returns with every leaf it does not change intact (patchtest); updating its result
// unchanged is a silent no-op; and with workload-configmap and storage removed, Kaiwo's volumes for
// them are gone. Only what the decoder refuses ends the check early.
func FuzzUpdate(f *testing.F) {
	pols := fzPolicies(f)
	for _, seed := range fzSeeds(f) {
		f.Add(seed, "1", "2", "envVars: [{name: A, value: x}]", "-", "10Gi", "-", true, uint8(0))
		f.Add(seed, "16", "8", "", "envVars: [{name: B, value: y}]", "", "5Gi", false, uint8(1))
		f.Add(seed, "8", "-", rwEnv, "envVars: []", "-", "", true, uint8(0))
	}
	f.Fuzz(func(t *testing.T, obj []byte, gpusA, gpusB, envA, envB, storageA, storageB string, dropCode bool, pol uint8) {
		p := pols[int(pol)%len(pols)]
		polFor := func(string) *policy.Policy { return p }
		rawA := withAnnotations(obj, map[string]string{annotations.GPUs: gpusA, annotations.Env: envA, annotations.Storage: storageA, annotations.WorkloadConfigMap: "code"})
		if _, _, err := kinds.Decode(rawA); err != nil {
			return
		}
		live := rawA // stored before the policy, where the create is denied
		created, err := mutate.AdmitRequest(mutate.Request{Kinds: kinds, Raw: rawA, Policy: polFor, User: rwUser, Create: true})
		if err != nil {
			fzCheckDenial(t, err)
		} else if live, err = typedpatch.Apply(rawA, created.Patch); err != nil {
			t.Fatalf("the create patch does not apply: %v", err)
		}
		change := map[string]string{annotations.GPUs: gpusB, annotations.Env: envB, annotations.Storage: storageB}
		if dropCode {
			change[annotations.WorkloadConfigMap], change[annotations.Storage] = "-", "-"
		}
		next := withAnnotations(live, change)
		newObj, kind, err := kinds.Decode(next)
		if err != nil {
			t.Fatalf("the updated object does not decode: %v\n%s", err, next)
		}
		oldObj, _, err := kinds.Decode(live)
		if err != nil {
			t.Fatalf("the live object does not decode: %v\n%s", err, live)
		}
		res, err := kinds.AdmitUpdate(next, live, polFor, rwUser)
		if err != nil {
			fzCheckDenial(t, err)
			return // nothing was allowed, so nothing more to check
		}
		if !kind.Serving {
			if res.Managed || len(res.Patch) > 0 || len(res.Warnings) > 0 {
				t.Fatalf("a %s is mutated on UPDATE: patch %s, warnings %q", kind.GVK.Kind, rwJSON(res.Patch), res.Warnings)
			}
			return
		}
		fzCheckOracle(t, mutate.Input{Object: newObj, Raw: next, Policy: p, User: rwUser, Old: oldObj, OldRaw: live}, res.Patch)
		out, err := typedpatch.Apply(next, res.Patch)
		if err != nil {
			t.Fatalf("the update patch does not apply: %v", err)
		}
		again, err := kinds.AdmitUpdate(out, out, polFor, rwUser)
		if err != nil || len(again.Patch) > 0 || len(again.Warnings) > 0 {
			t.Fatalf("updating the result unchanged: err %v, patch %s, warnings %q\nlive: %s\nnext: %s\nout:  %s", err, rwJSON(again.Patch), again.Warnings, live, next, out)
		}
		if dropCode && res.Managed && (strings.Contains(string(out), `"name":"kaiwo-workload"`) || strings.Contains(string(out), `"name":"kaiwo-storage"`)) {
			t.Fatalf("workload-configmap and storage removed, yet Kaiwo's volume is left:\n%s", out)
		}
	})
}
