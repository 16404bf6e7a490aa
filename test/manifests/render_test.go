// Package manifests_test renders the install manifests, config/webhook with
// kustomize and charts/kaiwo-webhook with Helm, both in-process, and checks
// them against each other and against what the webhook server needs.
package manifests_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	// releaseName and namespace make the chart's names equal to config/webhook's.
	releaseName = "kaiwo-webhook"
	namespace   = "kaiwo-system"
	// kubeVersion is what `helm lint`/`helm template --kube-version` are given:
	// helm as a library defaults to v1.20, below the chart's kubeVersion.
	kubeVersion = "v1.37.0"
)

// root is the repository root (tests run in test/manifests).
func root(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func chartDir(t testing.TB) string { return filepath.Join(root(t), "charts", "kaiwo-webhook") }

// crdKustomization is what config/crd/kustomization.yaml must provide for
// `kubectl apply -k config/webhook`; TestKustomizeBuildsFromDisk checks that it exists.
const crdKustomization = "config/crd/kustomization.yaml"

// renderKustomize builds config/<dir> as `kubectl apply -k` would. It builds
// from an in-memory copy of config/ so that the other tests still run while
// config/crd lacks its kustomization (one listing its CRD files is stood in).
func renderKustomize(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	src := filepath.Join(root(t), "config")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.ToSlash(filepath.Join("/config", rel)), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !mem.Exists("/config/crd/kustomization.yaml") {
		crds, err := filepath.Glob(filepath.Join(src, "crd", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var k strings.Builder
		k.WriteString("resources:\n")
		for _, c := range crds {
			k.WriteString("- " + filepath.Base(c) + "\n")
		}
		if err := mem.WriteFile("/config/crd/kustomization.yaml", []byte(k.String())); err != nil {
			t.Fatal(err)
		}
	}
	return kustomize(t, mem, "/config/"+dir)
}

func kustomize(t testing.TB, fSys filesys.FileSystem, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fSys, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, out)
}

// lintChart is `helm lint --strict --kube-version` on the chart with the given
// values: it returns every message at warning or above.
func lintChart(t testing.TB, values map[string]any) []string {
	t.Helper()
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	linter := lint.AllWithKubeVersionAndSchemaValidation(chartDir(t), values, namespace, kv, false)
	var msgs []string
	for _, m := range linter.Messages {
		if m.Severity >= support.WarningSev {
			msgs = append(msgs, m.Error())
		}
	}
	return msgs
}

// renderChart is `helm template kaiwo-webhook charts/kaiwo-webhook -n
// kaiwo-system --kube-version ...` with the given values, hooks included.
func renderChart(t testing.TB, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := tryRenderChart(t, values)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	return objs
}

func tryRenderChart(t testing.TB, values map[string]any) ([]*unstructured.Unstructured, error) {
	t.Helper()
	return renderChartAs(t, releaseName, namespace, values)
}

// renderChartAs renders the chart as release name in namespace ns.
func renderChartAs(t testing.TB, name, ns string, values map[string]any) ([]*unstructured.Unstructured, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir(t))
	if err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, err
	}
	caps.KubeVersion = *kv
	if !chartutil.IsCompatibleRange(chrt.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, errors.New("chart kubeVersion " + chrt.Metadata.KubeVersion + " excludes " + kubeVersion)
	}
	vals, err := chartutil.ToRenderValues(chrt, values, chartutil.ReleaseOptions{
		Name: name, Namespace: ns, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		return nil, err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") { // as helm's install action: printed, not applied
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}
	var all bytes.Buffer
	for _, h := range hooks {
		all.WriteString("---\n" + h.Manifest + "\n")
	}
	for _, m := range manifests {
		all.WriteString("---\n" + m.Content + "\n")
	}
	return decodeAll(t, all.Bytes()), nil
}

// decodeAll splits multi-document YAML into objects, skipping empty documents.
func decodeAll(t testing.TB, b []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err == io.EOF {
				return objs
			}
			t.Fatalf("decoding rendered YAML: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the one object of that kind (and name, if given).
func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s %q, found %d", kind, name, len(found))
	}
	return found[0]
}

func kinds(objs []*unstructured.Unstructured) []string {
	var ks []string
	for _, o := range objs {
		if !slices.Contains(ks, o.GetKind()) {
			ks = append(ks, o.GetKind())
		}
	}
	slices.Sort(ks)
	return ks
}

// into converts an unstructured object into a typed one, failing on fields the
// type does not know (a typo in a manifest).
func into[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}
