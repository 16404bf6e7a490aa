package gen_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// crdPath is the generated CRD, relative to this module.
const crdPath = "../../../config/crd/kaiwo.silogen.ai_kaiwopolicies.yaml"

// TestCRD checks the generated CRD as the API server would on install (schema
// structure, CEL rules compile within the cost limits), then validates objects
// against its schema and CEL rules, as the API server would on create. It runs
// here, in the tools module, to keep apiextensions-apiserver out of the main
// go.mod; api/v1alpha1's tests run it.
func TestCRD(t *testing.T) {
	data, err := os.ReadFile(crdPath)
	if err != nil {
		t.Fatal(err)
	}
	var v1crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &v1crd); err != nil {
		t.Fatal(err)
	}
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(&v1crd)
	var crd apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1crd, &crd, nil); err != nil {
		t.Fatal(err)
	}
	if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &crd); len(errs) > 0 {
		t.Fatalf("the API server would reject the CRD: %v", errs.ToAggregate())
	}

	// The internal version holds a schema shared by every version in spec.validation.
	openAPI := crd.Spec.Validation.OpenAPIV3Schema
	structural, err := schema.NewStructural(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	schemaValidator, _, err := validation.NewSchemaValidator(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	celValidator := cel.NewValidator(structural, true, celconfig.PerCallLimit)

	const head = "apiVersion: kaiwo.silogen.ai/v1alpha1\nkind: KaiwoPolicy\nmetadata: {name: p}\nspec:\n"
	cases := map[string]struct {
		spec    string
		wantErr []string // substrings, one per expected error; none for a valid object
	}{
		"SPEC.md example": {spec: `
  priority: 10
  namespaceSelector:
    matchLabels: {kaiwo.silogen.ai/team: ml}
  mode: Enforce
  defaults:
    queue: team-ml
    gpuVendor: amd
    gpusPerNode: 8
    cpuPerGpu: "4"
    memoryPerGpu: 32Gi
    shmSize: 64Gi
    ttlSecondsAfterFinished: 3600
    priorityClass: normal
    imagePullSecret: regcred
    tolerations: [{key: amd.com/gpu, operator: Exists, effect: NoSchedule}]
    nodeSelector: {node-pool: gpu}
  limits:
    maxGpusPerWorkload: 32
    allowedVendors: [amd]
    allowedQueues: [team-ml, team-ml-low]
    allowedSecrets: ["hf-token", "team-ml-*"]
  locked: [queue, tolerations, nodeSelector]
  podTemplatePatch:
    metadata: {annotations: {team: ml}}
  localQueue: {create: true, clusterQueue: kaiwo}
`},
		"minimal":         {spec: "  namespaceSelector: {}\n"},
		"gpusPerNodeFrom": {spec: "  namespaceSelector: {}\n  defaults:\n    gpusPerNodeFrom: {resourceFlavor: mi300x, nodeLabel: beta.amd.com/gpu.family.AI}\n"},
		"no namespaceSelector": {
			spec:    "  mode: OptIn\n",
			wantErr: []string{`spec.namespaceSelector: Required value`},
		},
		"bad mode": {
			spec:    "  namespaceSelector: {}\n  mode: Always\n",
			wantErr: []string{`spec.mode: Unsupported value: "Always": supported values: "OptIn", "Enforce"`},
		},
		"bad vendor": {
			spec:    "  namespaceSelector: {}\n  defaults: {gpuVendor: intel}\n  limits: {allowedVendors: [amd, intel]}\n",
			wantErr: []string{`spec.defaults.gpuVendor: Unsupported value: "intel"`, `spec.limits.allowedVendors[1]: Unsupported value: "intel"`},
		},
		"gpusPerNode and gpusPerNodeFrom": {
			spec:    "  namespaceSelector: {}\n  defaults:\n    gpusPerNode: 8\n    gpusPerNodeFrom: {resourceFlavor: mi300x, nodeLabel: gpus}\n",
			wantErr: []string{`spec.defaults: Invalid value: gpusPerNode and gpusPerNodeFrom are mutually exclusive`},
		},
		"gpusPerNode 0": {
			spec:    "  namespaceSelector: {}\n  defaults: {gpusPerNode: 0}\n",
			wantErr: []string{`spec.defaults.gpusPerNode: Invalid value: 0: spec.defaults.gpusPerNode in body should be greater than or equal to 1`},
		},
		"unknown locked field": {
			spec:    "  namespaceSelector: {}\n  defaults: {queue: q}\n  locked: [queue, gpus]\n",
			wantErr: []string{`spec.locked[1]: Unsupported value: "gpus"`},
		},
		"locked without a default": {
			spec:    "  namespaceSelector: {}\n  defaults: {queue: q}\n  locked: [queue, priorityClass]\n",
			wantErr: []string{`spec.locked: Invalid value: each locked field must be set in spec.defaults, the value it is locked to`},
		},
		"locked without defaults": {
			spec:    "  namespaceSelector: {}\n  locked: [tolerations]\n",
			wantErr: []string{`spec.locked: Invalid value: each locked field must be set in spec.defaults, the value it is locked to`},
		},
		"duplicate locked field": {
			spec:    "  namespaceSelector: {}\n  defaults: {queue: q}\n  locked: [queue, queue]\n",
			wantErr: []string{`spec.locked[1]: Duplicate value: "queue"`},
		},
		"empty allowedQueues": {
			spec:    "  namespaceSelector: {}\n  limits: {allowedQueues: []}\n",
			wantErr: []string{`spec.limits.allowedQueues: Invalid value: 0: spec.limits.allowedQueues in body should have at least 1 items`},
		},
		"bad quantity": {
			spec:    "  namespaceSelector: {}\n  defaults: {memoryPerGpu: 32GB}\n",
			wantErr: []string{`spec.defaults.memoryPerGpu`},
		},
		"patch must be an object": {
			spec:    "  namespaceSelector: {}\n  podTemplatePatch: [1]\n",
			wantErr: []string{`spec.podTemplatePatch: Invalid value: "array": spec.podTemplatePatch in body must be of type object`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var obj map[string]any // integers as int64, as the API server decodes them
			if err := utilyaml.Unmarshal([]byte(head+tc.spec), &obj); err != nil {
				t.Fatal(err)
			}
			defaulting.Default(obj, structural)
			errs := validation.ValidateCustomResource(nil, obj, schemaValidator)
			errs = append(errs, listtype.ValidateListSetsAndMaps(nil, structural, obj)...)
			if len(errs) == 0 { // the API server runs CEL only on schema-valid objects
				var celErrs field.ErrorList
				celErrs, _ = celValidator.Validate(context.Background(), nil, structural, obj, nil, celconfig.RuntimeCELCostBudget)
				errs = append(errs, celErrs...)
			}
			if len(errs) != len(tc.wantErr) {
				t.Fatalf("errors = %v, want %d: %q", errs, len(tc.wantErr), tc.wantErr)
			}
			for _, want := range tc.wantErr {
				found := false
				for _, e := range errs {
					found = found || strings.Contains(e.Error(), want)
				}
				if !found {
					t.Errorf("errors = %v, want one containing %q", errs, want)
				}
			}
		})
	}
}
