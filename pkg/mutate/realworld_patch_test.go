package mutate_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
)

// rwOwned are the paths the webhook may replace: the fields it owns. Anything else it may only add to.
var rwOwned = []*regexp.Regexp{
	regexp.MustCompile(`^/metadata/labels/(kueue\.x-k8s\.io|kaiwo\.silogen\.ai)~1[^/]+$`),
	regexp.MustCompile(`^/metadata/annotations/kaiwo\.silogen\.ai~1applied$`),
	regexp.MustCompile(`^/spec/(suspend|shutdownAfterJobFinishes|ttlSecondsAfterFinished)$`),
	regexp.MustCompile(`^/spec/rayCluster(Spec|Config)/(suspend|enableInTreeAutoscaling)$`),
	regexp.MustCompile(`^/spec/rayCluster(Spec|Config)/workerGroupSpecs/\d+/(replicas|minReplicas|maxReplicas)$`),
	regexp.MustCompile(`^/spec/template/metadata/labels/kueue\.x-k8s\.io~1[^/]+$`),
}

// rwCheckPatch: no removals, replacements only of owned fields, and every other leaf of the input
// (a scalar, or an empty object or array) is still in the output at the same JSON pointer with the same value.
func rwCheckPatch(t *testing.T, in, out []byte, ops []jsonpatch.Operation) {
	t.Helper()
	var replaced []string
	for _, op := range ops {
		switch op.Operation {
		case "remove":
			t.Errorf("patch removes %s: the webhook must only add or replace what it owns", op.Path)
		case "replace", "move", "copy":
			replaced = append(replaced, op.Path)
			owned := false
			for _, re := range rwOwned {
				owned = owned || re.MatchString(op.Path)
			}
			if !owned {
				t.Errorf("patch %ss %s, a field the webhook does not own (value %s)", op.Operation, op.Path, rwJSON(op.Value))
			}
		}
	}
	inDoc, outDoc := rwDecode(t, in), rwDecode(t, out)
	leaves := map[string]any{}
	rwLeaves("", inDoc, leaves)
	for _, p := range slices.Sorted(maps.Keys(leaves)) {
		if rwCovered(p, replaced) {
			continue
		}
		want := leaves[p]
		got, ok := rwGet(outDoc, p)
		switch {
		case !ok:
			t.Errorf("input field %s is gone from the output", p)
		case rwEmptyContainer(want):
			if reflect.TypeOf(got) != reflect.TypeOf(want) {
				t.Errorf("input field %s was %s, is %s in the output", p, rwJSON(want), rwJSON(got))
			}
		case !reflect.DeepEqual(want, got):
			t.Errorf("input field %s changed from %s to %s without a replace op", p, rwJSON(want), rwJSON(got))
		}
	}
}

func rwDecode(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func rwEmptyContainer(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

var rwEscape = strings.NewReplacer("~", "~0", "/", "~1")

func rwLeaves(prefix string, v any, out map[string]any) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			out[prefix] = v
		}
		for k, e := range v {
			rwLeaves(prefix+"/"+rwEscape.Replace(k), e, out)
		}
	case []any:
		if len(v) == 0 {
			out[prefix] = v
		}
		for i, e := range v {
			rwLeaves(prefix+"/"+strconv.Itoa(i), e, out)
		}
	default:
		out[prefix] = v
	}
}

func rwGet(doc any, pointer string) (any, bool) {
	if pointer == "" {
		return doc, true
	}
	cur := doc
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func rwCovered(p string, replaced []string) bool {
	for _, r := range replaced {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}
