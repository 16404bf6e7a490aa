package bench

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

// The payloads are generated from testdata/src by `go -C bench test . -run TestPayloads -update`.
//
//go:embed testdata/payloads/*.json testdata/policy.yaml
var files embed.FS

// Namespace and User are what every benchmark request carries.
const (
	Namespace = "team-ml"
	User      = "alice@example.com"
)

// MutatedSuffix names the already-mutated variant of a payload: the webhook's own output, which a
// second pass (a reinvocation, or a re-apply of a Deployment) must leave unchanged.
const MutatedSuffix = "-mutated"

// Bases are the payloads as users submit them. Each has a Base+MutatedSuffix variant.
var Bases = []string{"job2k", "job8k", "rayjob", "deployment", "rayservice", "env1000"}

// Payload is one object as the API server sends it to the webhook.
type Payload struct {
	Name string
	// Raw is the object's compact JSON.
	Raw []byte
	// Kind is the object's kind, e.g. "Job".
	Kind string
	// Mutated marks an already-mutated variant.
	Mutated bool
}

// Update reports whether the API server sends p as an UPDATE: a serving kind's mutated variant stands
// for the re-apply of a running Deployment or RayService. Everything else is a CREATE.
func (p Payload) Update() bool {
	return p.Mutated && (p.Kind == "Deployment" || p.Kind == "RayService")
}

// Names lists every payload: each base, then its mutated variant.
func Names() []string {
	var names []string
	for _, b := range Bases {
		names = append(names, b, b+MutatedSuffix)
	}
	return names
}

// Load reads one payload.
func Load(name string) (Payload, error) {
	b, err := files.ReadFile(path.Join("testdata", "payloads", name+".json"))
	if err != nil {
		return Payload{}, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return Payload{}, fmt.Errorf("payload %s: %w", name, err)
	}
	var tm struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(buf.Bytes(), &tm); err != nil {
		return Payload{}, fmt.Errorf("payload %s: %w", name, err)
	}
	return Payload{Name: name, Raw: buf.Bytes(), Kind: tm.Kind, Mutated: strings.HasSuffix(name, MutatedSuffix)}, nil
}

// LoadAll reads every payload, in the order of Names.
func LoadAll() ([]Payload, error) {
	var ps []Payload
	for _, n := range Names() {
		p, err := Load(n)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// PolicyYAML is the KaiwoPolicy every benchmark mutates under (the SPEC's team-ml example).
func PolicyYAML() []byte {
	b, err := files.ReadFile("testdata/policy.yaml")
	if err != nil {
		panic(err) // embedded
	}
	return b
}

// Policy is PolicyYAML, compiled.
func Policy() (*policy.Policy, error) {
	pols, _, err := policy.Load(bytes.NewReader(PolicyYAML()))
	if err != nil {
		return nil, err
	}
	if len(pols) != 1 {
		return nil, fmt.Errorf("policy.yaml holds %d policies, want 1", len(pols))
	}
	c, errs := policy.Compile(&pols[0], nil)
	if len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return c.Policy(), nil
}
