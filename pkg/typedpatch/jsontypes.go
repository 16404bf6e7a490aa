package typedpatch

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// How encoding/json writes a Go value, for the typed diff: which fields it writes and under what names,
// which values write themselves, and where a JSON pointer leads in a Go value.

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

var leafCache sync.Map // reflect.Type -> bool

// leaf reports whether t encodes itself: it is compared and replaced whole.
func leaf(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		return false // a pointer's element decides
	}
	if l, ok := leafCache.Load(t); ok {
		return l.(bool)
	}
	l := t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) ||
		t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType)
	leafCache.Store(t, l)
	return l
}

// jsonValue is v as a patch value: encoding/json writes it as it writes the field.
func jsonValue(v reflect.Value) any {
	if v.Kind() != reflect.Pointer && v.CanAddr() {
		return v.Addr().Interface() // pointer-receiver MarshalJSON methods apply
	}
	return v.Interface()
}

func addressable(v reflect.Value) reflect.Value {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	return c
}

// structField is one field as encoding/json writes it.
type structField struct {
	index               []int
	pointer             string // the name, escaped as a JSON pointer segment
	omitEmpty, omitZero bool
	quoted              bool
	mergeKey            string // of a list: the key its elements merge by (patchMergeKey), as in strategic merge
}

func (f *structField) omitted(v reflect.Value) bool {
	if f.omitEmpty && isEmptyValue(v) {
		return true
	}
	if f.omitZero {
		if z, ok := isZeroer(v); ok {
			return z
		}
		return v.IsZero()
	}
	return false
}

type zeroer interface{ IsZero() bool }

func isZeroer(v reflect.Value) (bool, bool) {
	if z, ok := v.Interface().(zeroer); ok {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return true, true
		}
		return z.IsZero(), true
	}
	if v.CanAddr() {
		if z, ok := v.Addr().Interface().(zeroer); ok {
			return z.IsZero(), true
		}
	}
	return false, false
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

var fieldCache sync.Map // reflect.Type -> typeFields

// typeFields are a struct type's fields as encoding/json writes them; modelled is false where the
// typed diff would get them wrong (see structFields).
type typeFields struct {
	fs       []structField
	modelled bool
}

// structFields lists the fields encoding/json writes for t, embedded structs inlined, in order. It
// reports false for a type whose fields it does not model: one that embeds a struct pointer (its
// fields are written inline only when the pointer is set) or writes two fields under one name (the
// dominance rules of encoding/json then pick one or none). Diff sends such types to the JSON diff.
func structFields(t reflect.Type) ([]structField, bool) {
	if tf, ok := fieldCache.Load(t); ok {
		return tf.(typeFields).fs, tf.(typeFields).modelled
	}
	fs, modelled := appendFields(nil, t, nil)
	names := make(map[string]bool, len(fs))
	for _, f := range fs {
		modelled = modelled && !names[f.pointer]
		names[f.pointer] = true
	}
	fieldCache.Store(t, typeFields{fs, modelled})
	return fs, modelled
}

func appendFields(fs []structField, t reflect.Type, index []int) ([]structField, bool) {
	modelled := true
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), index...), i)
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			var ok bool
			fs, ok = appendFields(fs, sf.Type, idx)
			modelled = modelled && ok
			continue
		}
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Pointer && sf.Type.Elem().Kind() == reflect.Struct {
			modelled = false
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f := structField{index: idx, pointer: escapePointer(name), mergeKey: sf.Tag.Get("patchMergeKey")}
		for o := range strings.SplitSeq(opts, ",") {
			switch o {
			case "omitempty":
				f.omitEmpty = true
			case "omitzero":
				f.omitZero = true
			case "string":
				f.quoted = true
			}
		}
		fs = append(fs, f)
	}
	return fs, modelled
}

var pointerEscape = strings.NewReplacer("~", "~0", "/", "~1")

func unescapePointer(s string) string {
	if !strings.Contains(s, "~") {
		return s
	}
	return pointerUnescape.Replace(s)
}

func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return pointerEscape.Replace(s)
}

// valueAt follows a JSON pointer's segments through the Go value v as encoding/json writes it. Where
// moved names the pointer reached so far, the walk goes on from the value it gives instead.
func valueAt(v reflect.Value, segs []string, moved map[string]reflect.Value) (reflect.Value, error) {
	prefix := ""
	for _, s := range segs {
		if moved != nil {
			prefix += "/" + s
			if m, ok := moved[prefix]; ok {
				v = m
				continue
			}
		}
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, errNoTypedDiff
			}
			v = v.Elem()
		}
		if leaf(v.Type()) {
			return reflect.Value{}, errNoTypedDiff
		}
		switch v.Kind() {
		case reflect.Struct:
			fs, ok := structFields(v.Type())
			if !ok {
				return reflect.Value{}, errNoTypedDiff
			}
			found := false
			for _, f := range fs {
				if f.pointer == s {
					v, found = v.FieldByIndex(f.index), true
					break
				}
			}
			if !found {
				return reflect.Value{}, errNoTypedDiff
			}
		case reflect.Map:
			e := v.MapIndex(reflect.ValueOf(unescapePointer(s)).Convert(v.Type().Key()))
			if !e.IsValid() {
				return reflect.Value{}, errNoTypedDiff
			}
			v = addressable(e)
		case reflect.Slice, reflect.Array:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= v.Len() {
				return reflect.Value{}, errNoTypedDiff
			}
			v = v.Index(i)
		default:
			return reflect.Value{}, errNoTypedDiff
		}
	}
	return v, nil
}
