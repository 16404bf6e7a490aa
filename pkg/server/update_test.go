package server_test

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	. "github.com/silogen/kaiwo-webhook/internal/testobj"
	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// TestHandlerUpdateUsesTheOldObject: on UPDATE the handler passes the stored object, so Kaiwo's own
// earlier GPU count follows a changed annotation instead of being denied as a conflict.
func TestHandlerUpdateUsesTheOldObject(t *testing.T) {
	live := string(mutated(t, MakeDeployment("d", "ml").Annotate(annotations.GPUs, "1").Obj()))
	next := strings.Replace(live, `"kaiwo.silogen.ai/gpus":"1"`, `"kaiwo.silogen.ai/gpus":"2"`, 1)
	if next == live {
		t.Fatalf("the annotation is not in the stored object: %s", live)
	}
	h, _ := newHandler(t)
	resp := send(t, h, review{op: admissionv1.Update, raw: next, old: live})
	if !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	if !strings.Contains(string(resp.Patch), `"value":"2"`) {
		t.Errorf("patch does not set 2 GPUs: %s", resp.Patch)
	}
	// Without an old object (a CREATE of the same), the record in the object itself proves nothing:
	// the earlier value is a conflict.
	resp = send(t, h, review{op: admissionv1.Create, raw: next})
	if resp.Allowed || !strings.Contains(resp.Result.Message, "conflicts with the 2 amd.com/gpu") {
		t.Errorf("CREATE: allowed=%v %v", resp.Allowed, resp.Result)
	}
}
