// Package typedpatch computes the JSON patch (RFC 6902) that turns the JSON an object arrived as into
// a changed copy of its Go value, as an admission webhook returns it. It knows nothing of the kinds it
// patches beyond what encoding/json and the Kubernetes API machinery say of Go types.
//
// Diff walks the two Go values as encoding/json would write them and visits only what differs, then
// fits each operation to the raw JSON (read with gjson along the operations' paths), where the two
// encodings differ in shape. A Go type the walk does not model (a map with non-string keys, a field
// with the ",string" option, an embedded struct pointer, two fields under one JSON name) is diffed
// through its JSON encoding instead, with the same fitting. Encode writes a patch byte for byte as
// encoding/json does, in one pass; Apply applies one as the API server does.
//
// What Diff guarantees, for raw that decodes (sigs.k8s.io/json, case-sensitive, as the API server
// decodes) into original, and mutated a changed copy of original:
//
//   - decoding Apply(raw, Diff(raw, original, mutated)) into the Go type gives mutated (semantically:
//     quantities by value, nil and empty lists alike);
//   - every leaf of raw whose value the change does not touch survives byte for byte: fields the Go
//     type does not know, values the Go type would write differently (a quantity "1000m" for "1"),
//     and, where elements are removed from a list merged by key (containers by name), each kept
//     element's own unknown fields;
//   - operations are add, remove and replace only, each valid where it runs, in order.
//
// FuzzDiff checks all three with an oracle that shares no code with Diff (package
// typedpatch/patchtest: the patch applied by github.com/evanphx/json-patch, decoded by
// sigs.k8s.io/json, raw walked with gjson). The oracle counts a list element that changed places as
// changed whole, so the unknown fields of kept elements are checked by
// TestPatchRemovalKeepsUnknownFields.
package typedpatch

import "gomodules.xyz/jsonpatch/v2"

// Operation is one JSON patch operation.
type Operation = jsonpatch.Operation
