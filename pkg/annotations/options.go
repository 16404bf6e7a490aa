package annotations

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Queueing modes.
const (
	QueueingKueue = "kueue"
	QueueingNone  = "none"
)

// VendorResource is the GPU resource name of each allowed value of kaiwo.silogen.ai/gpu-vendor.
func VendorResource(vendor string) string {
	switch vendor {
	case "amd":
		return "amd.com/gpu"
	case "nvidia":
		return "nvidia.com/gpu"
	}
	return ""
}

// Vendors lists the allowed values of kaiwo.silogen.ai/gpu-vendor.
func Vendors() []string { return []string{"amd", "nvidia"} }

// Bounds of the parsing.
const (
	// MaxValueBytes bounds one Kaiwo annotation value; the env file is the only one that needs more than a
	// name.
	MaxValueBytes = 64 * 1024
	// MaxEnvEntries bounds the entries of the kaiwo.silogen.ai/env annotation.
	MaxEnvEntries = 1024
	// MaxReportedErrors bounds the errors one denial lists; the rest are counted.
	MaxReportedErrors = 20
	// maxSuggestions bounds the unknown annotation keys that get a "did you mean" suggestion.
	maxSuggestions = 5
)

// Options are the user's Kaiwo annotations, parsed and checked one by one. Unset fields are nil or "".
type Options struct {
	GPUs           *int32
	GPUVendor      string
	GPUsPerReplica *int32
	Replicas       *int32
	GPUModel       string
	Queue          string
	PriorityClass  string
	Queueing       string
	Env            *EnvFile
	ConfigMap      string
	PullSecret     string
	ShmSize        *resource.Quantity
	TTL            *int32
	Container      string
	Storage        *resource.Quantity
	StorageClass   string
}

type parser func(o *Options, p *field.Path, v string) field.ErrorList

// parsers holds one validator per user annotation.
var parsers = map[string]parser{
	GPUs:              intParser(0, func(o *Options) **int32 { return &o.GPUs }),
	GPUsPerReplica:    intParser(1, func(o *Options) **int32 { return &o.GPUsPerReplica }),
	Replicas:          intParser(1, func(o *Options) **int32 { return &o.Replicas }),
	TTLSecondsAfter:   intParser(0, func(o *Options) **int32 { return &o.TTL }),
	GPUVendor:         enumParser(Vendors(), func(o *Options) *string { return &o.GPUVendor }),
	Queueing:          enumParser([]string{QueueingKueue, QueueingNone}, func(o *Options) *string { return &o.Queueing }),
	GPUModel:          labelValueParser(func(o *Options) *string { return &o.GPUModel }),
	Queue:             labelNameParser("a LocalQueue name", func(o *Options) *string { return &o.Queue }),
	PriorityClass:     labelNameParser("a WorkloadPriorityClass name", func(o *Options) *string { return &o.PriorityClass }),
	WorkloadConfigMap: nameParser("a ConfigMap name in the workload's namespace", func(o *Options) *string { return &o.ConfigMap }),
	ImagePullSecret:   nameParser("a Secret name in the workload's namespace", func(o *Options) *string { return &o.PullSecret }),
	Container: func(o *Options, p *field.Path, v string) field.ErrorList {
		if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
			return field.ErrorList{field.Invalid(p, v, "must be a container name: "+strings.Join(msgs, "; "))}
		}
		o.Container = v
		return nil
	},
	Storage:      storageParser,
	StorageClass: nameParser("a StorageClass name", func(o *Options) *string { return &o.StorageClass }),
	ShmSize: func(o *Options, p *field.Path, v string) field.ErrorList {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			return field.ErrorList{field.Invalid(p, v, "must be a positive quantity, e.g. 16Gi")}
		}
		o.ShmSize = &q
		return nil
	},
	Env: func(o *Options, p *field.Path, v string) field.ErrorList {
		env, errs := ParseEnv(p, v)
		o.Env = env
		return errs
	},
}

// ParseOptions reads the Kaiwo  Unknown keys under kaiwo.silogen.ai/ are denied, since a typo
// such as kaiwo.silogen.ai/gpu would otherwise run a workload without the GPUs it meant to ask for. The
// first MaxReportedErrors unknown keys are reported, the first few with a suggestion; the rest are counted.
func ParseOptions(annots map[string]string) (*Options, field.ErrorList) {
	o := &Options{}
	var errs field.ErrorList
	base := field.NewPath("metadata", "annotations")
	keys := make([]string, 0, len(annots))
	for k := range annots {
		if IsKaiwo(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	unknown := 0
	for _, k := range keys {
		v, p := annots[k], base.Key(k)
		parse, ok := parsers[k]
		switch {
		case ok && len(v) > MaxValueBytes:
			errs = append(errs, field.TooLong(p, "", MaxValueBytes))
		case ok:
			errs = append(errs, parse(o, p, strings.TrimSpace(v))...)
		case !Known(k):
			if unknown < listedUnknown {
				errs = append(errs, unknownKey(p, k, unknown))
			}
			unknown++
		}
	}
	if unknown > listedUnknown {
		errs = append(errs, field.Invalid(base, fmt.Sprintf("%d unknown Kaiwo annotations", unknown),
			fmt.Sprintf("unknown Kaiwo annotations: the first %d are listed, %d more are not", listedUnknown, unknown-listedUnknown)))
	}
	return o, errs
}

// listedUnknown is how many unknown keys a denial lists, leaving room for the count of the rest.
const listedUnknown = MaxReportedErrors - 1

// unknownKey is the error of the n-th unknown key: the first few suggest a known key, the first lists them.
func unknownKey(p *field.Path, key string, n int) *field.Error {
	known := UserKeys()
	detail := "unknown Kaiwo annotation"
	if n < maxSuggestions {
		if best := closest(key, known); best != "" {
			detail += fmt.Sprintf(" (did you mean %q?)", best)
		}
	}
	if n == 0 {
		detail += "; supported: " + strings.Join(known, ", ")
	}
	return field.Invalid(p, Shorten(key), detail)
}

// closest is the known key within an edit distance of 3 of key, or "".
func closest(key string, known []string) string {
	const far = 4
	best, bestDist := "", far
	var rows [2][]int
	for _, k := range known {
		if d := len(key) - len(k); d >= bestDist || -d >= bestDist {
			continue // the distance is at least the difference in length
		}
		if d := editDistance(key, k, &rows); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, for typo suggestions; rows is reused between calls.
func editDistance(a, b string, rows *[2][]int) int {
	prev, cur := rows[0][:0], rows[1][:0]
	for j := 0; j <= len(b); j++ {
		prev = append(prev, j)
		cur = append(cur, 0)
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	rows[0], rows[1] = prev, cur
	return prev[len(b)]
}

func intParser(min int64, target func(*Options) **int32) parser {
	return func(o *Options, p *field.Path, v string) field.ErrorList {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil && isDigits(strings.TrimPrefix(v, "-")):
			return field.ErrorList{field.Invalid(p, v, fmt.Sprintf("must be an integer from %d to %d", min, math.MaxInt32))}
		case err != nil:
			return field.ErrorList{field.Invalid(p, v, fmt.Sprintf("must be a whole number >= %d", min))}
		case n < min || n > math.MaxInt32:
			return field.ErrorList{field.Invalid(p, v, fmt.Sprintf("must be an integer from %d to %d", min, math.MaxInt32))}
		}
		n32 := int32(n)
		*target(o) = &n32
		return nil
	}
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func enumParser(allowed []string, target func(*Options) *string) parser {
	return func(o *Options, p *field.Path, v string) field.ErrorList {
		for _, a := range allowed {
			if v == a {
				*target(o) = v
				return nil
			}
		}
		return field.ErrorList{field.NotSupported(p, v, allowed)}
	}
}

func labelValueParser(target func(*Options) *string) parser {
	return func(o *Options, p *field.Path, v string) field.ErrorList {
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 || v == "" {
			return field.ErrorList{field.Invalid(p, v, "must be a node label value: "+strings.Join(append(msgs, "non-empty"), "; "))}
		}
		*target(o) = v
		return nil
	}
}

// nameParser accepts an object name in the workload's own namespace.
func nameParser(what string, target func(*Options) *string) parser {
	return func(o *Options, p *field.Path, v string) field.ErrorList {
		if msg := checkName(v); msg != "" {
			return field.ErrorList{field.Invalid(p, v, "must be "+what+": "+msg)}
		}
		*target(o) = v
		return nil
	}
}

// labelNameParser accepts an object name that is also written as a label value.
func labelNameParser(what string, target func(*Options) *string) parser {
	return func(o *Options, p *field.Path, v string) field.ErrorList {
		msg := checkName(v)
		if msg == "" && len(v) > validation.LabelValueMaxLength {
			msg = fmt.Sprintf("must be no more than %d characters", validation.LabelValueMaxLength)
		}
		if msg != "" {
			return field.ErrorList{field.Invalid(p, v, "must be "+what+": "+msg)}
		}
		*target(o) = v
		return nil
	}
}

// checkName returns why v is not an object name, or "".
func checkName(v string) string {
	if strings.Contains(v, "/") {
		return "references to other namespaces (namespace/name) are not allowed"
	}
	if msgs := validation.IsDNS1123Subdomain(v); len(msgs) > 0 {
		return strings.Join(msgs, "; ")
	}
	return ""
}

func storageParser(o *Options, p *field.Path, v string) field.ErrorList {
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() <= 0 || q.MilliValue()%1000 != 0 {
		return field.ErrorList{field.Invalid(p, v, "must be a positive whole number of bytes, e.g. 100Gi")}
	}
	o.Storage = &q
	return nil
}
