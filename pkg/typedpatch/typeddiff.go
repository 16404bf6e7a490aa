package typedpatch

import (
	"errors"
	"reflect"
	"sort"
	"strconv"

	"gomodules.xyz/jsonpatch/v2"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
)

// errNoTypedDiff marks a Go type the typed diff does not model; Diff then diffs JSON encodings instead.
var errNoTypedDiff = errors.New("type not modelled by the typed diff")

// typedDiff returns the JSON patch between the Go encodings of a and b, two values of the same type,
// without encoding either: it walks both as encoding/json would write them and visits only what
// differs, so the parts a mutation never touches (managedFields, the last-applied annotation) cost a
// comparison, not an encoding and a parse. Operations come in encoding order; an operation's value is
// the Go value, encoded when the patch is. Values with their own JSON encoding (quantities, times) are
// compared semantically and replaced whole.
func typedDiff(a, b any) (*differ, error) {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Type() != vb.Type() {
		return nil, errNoTypedDiff
	}
	d := &differ{path: make([]byte, 0, 128)}
	if err := d.value(va, vb); err != nil {
		return nil, err
	}
	return d, nil
}

// differ collects operations; path is the JSON pointer of the value being compared.
type differ struct {
	ops  []jsonpatch.Operation
	path []byte
	// moved maps the pointer of a list element, by its index in the original, to its mutated value
	// where that index differs (see keyedSlice).
	moved map[string]reflect.Value
}

// push appends a segment to the path and returns the length to pop back to.
func (d *differ) push(seg string) int {
	n := len(d.path)
	d.path = append(append(d.path, '/'), seg...)
	return n
}

func (d *differ) pushIndex(i int) int {
	n := len(d.path)
	d.path = strconv.AppendInt(append(d.path, '/'), int64(i), 10)
	return n
}

func (d *differ) add(op string, v reflect.Value) {
	o := jsonpatch.Operation{Operation: op, Path: string(d.path)}
	if op != "remove" {
		o.Value = jsonValue(v)
	}
	d.ops = append(d.ops, o)
}

func (d *differ) value(a, b reflect.Value) error {
	t := a.Type()
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		if leaf(t) {
			break
		}
		if !a.Equal(b) {
			d.add("replace", b)
		}
		return nil
	case reflect.Pointer:
		switch {
		case a.IsNil() && b.IsNil():
		case a.IsNil() || b.IsNil():
			d.add("replace", b) // null on one side
		default:
			return d.value(a.Elem(), b.Elem())
		}
		return nil
	}
	if leaf(t) {
		if !leafEqual(a, b) {
			d.add("replace", b)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return d.fields(a, b)
	case reflect.Map:
		return d.mapValue(a, b)
	case reflect.Slice:
		return d.slice(a, b)
	case reflect.Array:
		for i := range a.Len() {
			n := d.pushIndex(i)
			err := d.value(a.Index(i), b.Index(i))
			d.path = d.path[:n]
			if err != nil {
				return err
			}
		}
	case reflect.Interface:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			d.add("replace", b)
		}
	default:
		return errNoTypedDiff
	}
	return nil
}

var quantityType = reflect.TypeFor[resource.Quantity]()

// leafEqual compares values that encode themselves as the API machinery does: quantities by value.
func leafEqual(a, b reflect.Value) bool {
	if a.Type() == quantityType {
		qa, qb := a.Interface().(resource.Quantity), b.Interface().(resource.Quantity)
		return qa.Cmp(qb) == 0
	}
	return apiequality.Semantic.DeepEqual(a.Interface(), b.Interface())
}

func (d *differ) fields(a, b reflect.Value) error {
	fs, ok := structFields(a.Type())
	if !ok {
		return errNoTypedDiff
	}
	for i := range fs {
		f := &fs[i]
		fa, fb := a.FieldByIndex(f.index), b.FieldByIndex(f.index)
		ina, inb := !f.omitted(fa), !f.omitted(fb)
		if !ina && !inb {
			continue
		}
		n := d.push(f.pointer)
		var err error
		switch {
		case !ina:
			d.add("add", fb)
		case !inb:
			d.add("remove", fb)
		case f.quoted:
			if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
				err = errNoTypedDiff
			}
		case f.mergeKey != "":
			var keyed bool
			if keyed, err = d.keyedSlice(fa, fb, f.mergeKey); err == nil && !keyed {
				err = d.value(fa, fb)
			}
		default:
			err = d.value(fa, fb)
		}
		d.path = d.path[:n]
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *differ) mapValue(a, b reflect.Value) error {
	t := a.Type()
	if t.Key().Kind() != reflect.String {
		return errNoTypedDiff
	}
	if a.IsNil() != b.IsNil() {
		d.add("replace", b) // null on one side
		return nil
	}
	if a.Len() == 0 && b.Len() == 0 {
		return nil
	}
	if ma, ok := a.Interface().(map[string]string); ok { // labels, annotations, selectors
		d.stringMap(ma, b.Interface().(map[string]string))
		return nil
	}
	keys := make([]string, 0, b.Len())
	for _, k := range a.MapKeys() {
		keys = append(keys, k.String())
	}
	for _, k := range b.MapKeys() {
		if !a.MapIndex(k).IsValid() {
			keys = append(keys, k.String())
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv := reflect.ValueOf(k).Convert(t.Key())
		va, vb := a.MapIndex(kv), b.MapIndex(kv)
		n := d.push(escapePointer(k))
		var err error
		switch {
		case !va.IsValid():
			d.add("add", addressable(vb))
		case !vb.IsValid():
			d.add("remove", vb)
		default:
			err = d.value(addressable(va), addressable(vb))
		}
		d.path = d.path[:n]
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *differ) stringMap(a, b map[string]string) {
	var keys []string
	for k, va := range a {
		if vb, ok := b[k]; !ok || va != vb {
			keys = append(keys, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		n := d.push(escapePointer(k))
		va, ina := a[k]
		vb, inb := b[k]
		switch {
		case !ina:
			d.ops = append(d.ops, jsonpatch.Operation{Operation: "add", Path: string(d.path), Value: vb})
		case !inb:
			d.ops = append(d.ops, jsonpatch.Operation{Operation: "remove", Path: string(d.path)})
		case va != vb:
			d.ops = append(d.ops, jsonpatch.Operation{Operation: "replace", Path: string(d.path), Value: vb})
		}
		d.path = d.path[:n]
	}
}

func (d *differ) slice(a, b reflect.Value) error {
	if a.IsNil() != b.IsNil() {
		d.add("replace", b) // null on one side
		return nil
	}
	if a.Type().Elem().Kind() == reflect.Uint8 { // base64
		if string(a.Bytes()) != string(b.Bytes()) {
			d.add("replace", b)
		}
		return nil
	}
	m := min(a.Len(), b.Len())
	for i := range m {
		n := d.pushIndex(i)
		err := d.value(a.Index(i), b.Index(i))
		d.path = d.path[:n]
		if err != nil {
			return err
		}
	}
	for i := m; i < b.Len(); i++ {
		n := d.pushIndex(i)
		d.add("add", b.Index(i))
		d.path = d.path[:n]
	}
	for i := a.Len() - 1; i >= m; i-- { // from the end, so each index is still there
		n := d.pushIndex(i)
		d.add("remove", a.Index(i))
		d.path = d.path[:n]
	}
	return nil
}

// keyedSlice diffs a list whose elements merge by key (containers by name) when elements were removed
// from it: each remaining element is diffed with itself, not with whatever moved into its place, so what
// raw holds beyond the Go type stays with its element. It handles the list only when the remaining
// elements keep their order and new ones come after them; otherwise the list is diffed by position.
// Operations come in an order in which each index is still valid: the remaining elements at their
// indexes in a, the removals from the end, the new elements appended.
func (d *differ) keyedSlice(a, b reflect.Value, key string) (bool, error) {
	if a.Kind() != reflect.Slice || a.Type().Elem().Kind() != reflect.Struct || a.Len() == 0 || b.IsNil() {
		return false, nil
	}
	var kf *structField
	fs, ok := structFields(a.Type().Elem())
	if !ok {
		return false, nil // the walk by position refuses it
	}
	for i := range fs {
		if fs[i].pointer == key {
			kf = &fs[i]
		}
	}
	if kf == nil || kf.index == nil {
		return false, nil
	}
	keyOf := func(v reflect.Value) (string, bool) {
		k := v.FieldByIndex(kf.index)
		switch k.Kind() {
		case reflect.String:
			return k.String(), true
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return strconv.FormatInt(k.Int(), 10), true
		}
		return "", false
	}
	if a.Len() <= b.Len() {
		same := true // the common case, nothing removed or moved: no maps needed to see it
		for i := 0; i < a.Len() && same; i++ {
			ka, oka := keyOf(a.Index(i))
			kb, okb := keyOf(b.Index(i))
			same = oka && okb && ka == kb
		}
		if same {
			return false, nil
		}
	}
	inB := make(map[string]int, b.Len())
	for i := range b.Len() {
		k, ok := keyOf(b.Index(i))
		if _, dup := inB[k]; !ok || dup {
			return false, nil
		}
		inB[k] = i
	}
	kept := make([]int, 0, b.Len()) // kept[j] is the index in a of b's element j
	seen := make(map[string]bool, a.Len())
	for i := range a.Len() {
		k, ok := keyOf(a.Index(i))
		if !ok || seen[k] {
			return false, nil
		}
		seen[k] = true
		if j, ok := inB[k]; ok {
			if j != len(kept) {
				return false, nil // reordered
			}
			kept = append(kept, i)
		}
	}
	if len(kept) == a.Len() {
		return false, nil // nothing removed: by position is the same alignment
	}
	for j, i := range kept {
		n := d.pushIndex(i)
		if i != j {
			// Operations under this element name it by its index in a; the mutated value is at j.
			if d.moved == nil {
				d.moved = map[string]reflect.Value{}
			}
			d.moved[string(d.path)] = b.Index(j)
		}
		err := d.value(a.Index(i), b.Index(j))
		d.path = d.path[:n]
		if err != nil {
			return false, err
		}
	}
	for i, j := a.Len()-1, len(kept)-1; i >= 0; i-- {
		if j >= 0 && kept[j] == i {
			j--
			continue
		}
		n := d.pushIndex(i)
		d.add("remove", a.Index(i))
		d.path = d.path[:n]
	}
	for j := len(kept); j < b.Len(); j++ {
		n := d.pushIndex(j)
		d.add("add", b.Index(j))
		d.path = d.path[:n]
	}
	return true, nil
}
