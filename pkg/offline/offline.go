package offline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// Options say how to run.
type Options struct {
	// PolicyFor gives the effective policy of a namespace; nil means the built-in default.
	PolicyFor func(namespace string) *policy.Policy
	User      string
	// Patch prints the JSON patch of each document instead of the mutated document.
	Patch bool
	// Old holds the stored objects, for a preview of an UPDATE: a document with an old one of the same
	// apiVersion, kind, namespace and name is mutated as an UPDATE of it.
	Old  io.Reader
	olds map[string][]byte
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
// handle pass through unchanged, as the API server would pass them. The first denial stops the run.
func Run(in io.Reader, opts Options) ([]Document, error) {
	policyFor := opts.PolicyFor
	if policyFor == nil {
		def := policy.Default()
		policyFor = func(string) *policy.Policy { return def }
	}
	if opts.Old != nil {
		var err error
		if opts.olds, err = readOld(opts.Old); err != nil {
			return nil, err
		}
	}
	reader := yaml.NewYAMLReader(bufio.NewReader(in))
	var docs []Document
	for i := 0; ; i++ {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(chunk))) == 0 {
			i--
			continue
		}
		doc, err := one(i, chunk, policyFor, opts)
		if err != nil {
			return docs, err
		}
		docs = append(docs, doc)
	}
}

func one(i int, chunk []byte, policyFor func(string) *policy.Policy, opts Options) (Document, error) {
	raw, err := sigsyaml.YAMLToJSON(chunk)
	if err != nil {
		return Document{}, fmt.Errorf("document %d: not YAML: %w", i, err)
	}
	var meta struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return Document{}, fmt.Errorf("document %d: not a Kubernetes object: %w", i, err)
	}
	doc := Document{Index: i, Kind: meta.Kind, Name: meta.Metadata.Name}
	if _, _, err := mutate.Decode(raw); err != nil {
		doc.Output = chunk
		if opts.Patch {
			doc.Output = []byte("[]\n")
		}
		return doc, nil
	}
	res, err := mutate.AdmitUpdate(raw, opts.olds[objectKey(raw)], policyFor, opts.User)
	if err != nil {
		return doc, fmt.Errorf("document %d (%s %s): %w", i, meta.Kind, meta.Metadata.Name, err)
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
	patched, err := mutate.ApplyPatch(raw, res.Patch)
	if err != nil {
		return doc, fmt.Errorf("document %d: applying patch: %w", i, err)
	}
	doc.Output, err = sigsyaml.JSONToYAML(patched)
	return doc, err
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
