package offline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/tidwall/gjson"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
	"github.com/silogen/kaiwo-webhook/pkg/typedpatch"
)

// Options say how to run.
type Options struct {
	// Kinds are the kinds the webhook handles; nil means mutate.Builtin().
	Kinds *mutate.Registry
	// PolicyFor gives the effective policy of a namespace; nil means the built-in default.
	PolicyFor func(namespace string) *policy.Policy
	User      string
	// Patch prints the JSON patch of each document instead of the mutated document.
	Patch bool
	// Old holds stored objects, as JSON: a document of the same kind, namespace and name is previewed as
	// an UPDATE of it (see LoadOld).
	Old map[ObjectKey][]byte
}

// Document is the outcome for one input document.
type Document struct {
	Index    int
	Kind     string
	Name     string
	Managed  bool
	Warnings []string
	Output   []byte
}

// Run mutates every document of a multi-document YAML stream. Documents of kinds the webhook does not
// handle pass through unchanged, as the API server would pass them; a document of a handled kind that
// cannot be decoded (or of a version not handled) is an error, as serve answers it with 400. The first
// denial stops the run.
func Run(in io.Reader, opts Options) ([]Document, error) {
	policyFor := opts.PolicyFor
	if policyFor == nil {
		def := policy.Default()
		policyFor = func(string) *policy.Policy { return def }
	}
	if opts.Kinds == nil {
		opts.Kinds = mutate.Builtin()
	}
	var docs []Document
	err := eachDocument(in, func(i int, chunk []byte) error {
		doc, err := one(i, chunk, policyFor, opts)
		if err == nil {
			docs = append(docs, doc)
		}
		return err
	})
	return docs, err
}

// eachDocument calls f with each document of a multi-document YAML stream that holds more than comments,
// counted from 0; it stops at f's first error.
func eachDocument(in io.Reader, f func(i int, chunk []byte) error) error {
	reader := yaml.NewYAMLReader(bufio.NewReader(in))
	for i := 0; ; i++ {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(chunk))) == 0 {
			i--
			continue
		}
		if err := f(i, chunk); err != nil {
			return err
		}
	}
}

func one(i int, chunk []byte, policyFor func(string) *policy.Policy, opts Options) (Document, error) {
	raw, err := toJSON(chunk)
	if err != nil {
		return Document{}, fmt.Errorf("document %d: not YAML: %w", i, err)
	}
	key, err := keyOf(raw)
	if err != nil {
		if _, _, derr := opts.Kinds.Decode(raw); derr != nil {
			err = derr // the message serve answers with
		}
		return Document{}, fmt.Errorf("document %d: not a Kubernetes object: %w", i, err)
	}
	doc := Document{Index: i, Kind: key.Kind, Name: key.Name}
	if !handled(opts.Kinds, raw) {
		// A kind the webhook does not handle: the validating webhook still refuses GPUs in Enforce.
		check := opts.Kinds.ValidateUnhandledBy(raw, policyFor(key.Namespace), opts.User)
		if old := oldFor(opts.Old, key); old != nil {
			check = opts.Kinds.ValidateUnhandledUpdate(raw, old, policyFor(key.Namespace), opts.User)
		}
		if err := check; err != nil {
			return doc, fmt.Errorf("document %d (%s %s): %w", i, key.Kind, key.Name, err)
		}
		doc.Output = chunk
		if opts.Patch {
			doc.Output = []byte("[]\n")
		}
		return doc, nil
	}
	old := oldFor(opts.Old, key)
	var res *mutate.Result
	if old != nil {
		res, err = opts.Kinds.AdmitUpdate(raw, old, policyFor, opts.User)
	} else {
		res, err = opts.Kinds.Admit(raw, policyFor, opts.User)
	}
	if err == nil {
		var warnings []string
		warnings, err = validate(res.Kind, raw, res.Patch, old, policyFor(key.Namespace), opts.User)
		res.Warnings = append(res.Warnings, warnings...)
	}
	if err != nil {
		return doc, fmt.Errorf("document %d (%s %s): %w", i, key.Kind, key.Name, err)
	}
	doc.Managed, doc.Warnings = res.Managed, res.Warnings
	if opts.Patch {
		ops := res.Patch
		if ops == nil {
			doc.Output = []byte("[]\n")
			return doc, nil
		}
		doc.Output, err = json.MarshalIndent(ops, "", "  ")
		doc.Output = append(doc.Output, '\n')
		return doc, err
	}
	if !res.Managed {
		doc.Output = chunk
		return doc, nil
	}
	patched, err := typedpatch.Apply(raw, res.Patch)
	if err != nil {
		return doc, fmt.Errorf("document %d: applying patch: %w", i, err)
	}
	doc.Output, err = sigsyaml.JSONToYAML(patched)
	return doc, err
}

// toJSON converts a document to the JSON the API server would get. A JSON document is kept as it is, so
// the decoder sees it as serve would (a key given twice included); YAML with a key given twice is an
// error, as kubectl makes it.
func toJSON(chunk []byte) ([]byte, error) {
	if t := bytes.TrimSpace(chunk); json.Valid(t) {
		return t, nil
	}
	return sigsyaml.YAMLToJSONStrict(chunk)
}

// handled reports whether raw names the group and kind of one of kinds, in any version: a version it does
// not handle, or an object it cannot decode, is refused as serve refuses it, never passed through as if the
// webhook would not see it.
func handled(kinds *mutate.Registry, raw []byte) bool {
	tm := gjson.GetManyBytes(raw, "apiVersion", "kind")
	_, ok := kinds.ForGroupKind(schema.FromAPIVersionAndKind(tm[0].String(), tm[1].String()).GroupKind())
	return ok
}

// stripComments drops comment-only lines, so a document of comments counts as empty.
func stripComments(b []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// Write prints the documents as one YAML stream (or one JSON patch per document).
func Write(w io.Writer, docs []Document) error {
	for i, d := range docs {
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		out := d.Output
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}
