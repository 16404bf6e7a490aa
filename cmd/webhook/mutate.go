package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/offline"
	"github.com/silogen/kaiwo-webhook/pkg/policy"
)

func runMutate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "manifest file to mutate, or - for standard input (required)")
	policyFile := fs.String("policy", "", "file with one or more KaiwoPolicy documents (and Kueue ResourceFlavors they read); default: the built-in policy")
	nsLabels := fs.String("namespace-labels", "", "labels of the objects' namespace, as k=v,k=v")
	user := fs.String("user", "", "the requesting user, as the API server would name it")
	patch := fs.Bool("patch", false, "print the JSON patch of each document instead of the mutated YAML")
	quiet := fs.Bool("quiet", false, "do not print warnings")
	oldFile := fs.String("old", "", "file with the stored objects: a document of the same kind, namespace and name is previewed as an UPDATE of it")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: webhook mutate -f FILE|- [--policy FILE] [--namespace-labels k=v,...] [--user NAME] [--old FILE] [--patch]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *file == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	labels, err := parseLabels(*nsLabels)
	if err != nil {
		fmt.Fprintf(stderr, "--namespace-labels: %v\n", err)
		return 2
	}
	pol, err := loadPolicy(*policyFile, labels)
	if err != nil {
		fmt.Fprintf(stderr, "--policy %s: %v\n", *policyFile, err)
		return 1
	}
	var old map[offline.ObjectKey][]byte
	if *oldFile != "" {
		if old, err = loadOld(*oldFile); err != nil {
			fmt.Fprintf(stderr, "--old %s: %v\n", *oldFile, err)
			return 1
		}
	}
	if !*quiet {
		for _, w := range pol.Warnings { // what resolved fail-open, as the policy's status says
			fmt.Fprintf(stderr, "Warning: policy: %s\n", w)
		}
	}
	in := stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer f.Close()
		in = f
	}
	docs, err := offline.Run(in, offline.Options{
		Kinds:     mutate.Builtin(),
		PolicyFor: func(string) *policy.Policy { return pol },
		User:      *user,
		Patch:     *patch,
		Old:       old,
	})
	if !*quiet {
		for _, d := range docs {
			for _, w := range d.Warnings {
				fmt.Fprintf(stderr, "Warning: %s %s: %s\n", d.Kind, d.Name, w)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	if err := offline.Write(stdout, docs); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func loadOld(path string) (map[offline.ObjectKey][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return offline.LoadOld(f)
}

// loadPolicy resolves the effective policy of a namespace with the given labels from a policy file.
func loadPolicy(path string, nsLabels map[string]string) (*policy.Policy, error) {
	if path == "" {
		return policy.Default(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return policy.LoadResolved(f, nsLabels)
}

// parseLabels reads k=v,k=v.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not k=v", kv)
		}
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			return nil, fmt.Errorf("label key %q: %s", k, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			return nil, fmt.Errorf("label value %q: %s", v, strings.Join(msgs, "; "))
		}
		out[k] = v
	}
	return out, nil
}
