package typedpatch_test

import (
	"encoding/json"
	"math"
	"math/rand"
	"reflect"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"
)

// randMutator makes random changes to a typed object, of the kinds a mutating webhook makes and
// more: scalars set or cleared, pointers set or cleared, list elements removed from the middle,
// inserted, appended, swapped or duplicated, maps given or losing keys (keys that need escaping in a
// JSON pointer included), structs cleared or filled. Every value it writes is one JSON can carry
// (valid UTF-8, times in whole seconds), so that decode(encode(v)) == v.
type randMutator struct {
	r    *rand.Rand
	fill *randfill.Filler
}

func newRandMutator(seed int64) *randMutator {
	r := rand.New(rand.NewSource(seed))
	fill := randfill.New().RandSource(rand.NewSource(seed+1)).NilChance(0.5).NumElements(0, 2).MaxDepth(4).Funcs(
		func(q *resource.Quantity, c randfill.Continue) { *q = randQuantity(c.Rand) },
		func(v *intstr.IntOrString, c randfill.Continue) { *v = randIntOrString(c.Rand) },
		func(t *metav1.Time, c randfill.Continue) { *t = randTime(c.Rand) },
		func(t *metav1.MicroTime, c randfill.Continue) { *t = metav1.MicroTime(randTime(c.Rand)) },
		func(f *metav1.FieldsV1, c randfill.Continue) { f.SetRawString(`{"f:metadata":{}}`) },
		func(e *runtime.RawExtension, c randfill.Continue) { e.Raw = []byte(`{"a":1}`) },
		func(s *string, c randfill.Continue) { *s = randString(c.Rand) },
	)
	return &randMutator{r: r, fill: fill}
}

// oddStrings are strings and map keys that test escaping: JSON pointer (~, /), HTML, line separators,
// non-ASCII, empty.
var oddStrings = []string{"", "a", "b", "main", "a/b", "x~y", "~1", "</script>&", "\u2028", "é", "nvidia.com/gpu", "cpu", "memory", "0", "-"}

func randString(r *rand.Rand) string {
	if r.Intn(3) == 0 {
		return oddStrings[r.Intn(len(oddStrings))] + oddStrings[r.Intn(len(oddStrings))]
	}
	return oddStrings[r.Intn(len(oddStrings))]
}

var quantities = []string{"0", "1", "1000m", "500m", "1.5", "2Gi", "2048Mi", "100e3", "1k", "64Gi", "8"}

func randQuantity(r *rand.Rand) resource.Quantity {
	return resource.MustParse(quantities[r.Intn(len(quantities))])
}

func randIntOrString(r *rand.Rand) intstr.IntOrString {
	if r.Intn(2) == 0 {
		return intstr.FromInt32(r.Int31n(200) - 100)
	}
	return intstr.FromString([]string{"25%", "1", "http", ""}[r.Intn(4)])
}

func randTime(r *rand.Rand) metav1.Time {
	if r.Intn(4) == 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(r.Int63n(4e9), 0))
}

var (
	quantityType    = reflect.TypeFor[resource.Quantity]()
	timeType        = reflect.TypeFor[metav1.Time]()
	microTimeType   = reflect.TypeFor[metav1.MicroTime]()
	intOrStringType = reflect.TypeFor[intstr.IntOrString]()
	fieldsType      = reflect.TypeFor[metav1.FieldsV1]()
	rawExtType      = reflect.TypeFor[runtime.RawExtension]()
)

// special are types written whole, by a generator of their own.
func special(t reflect.Type) bool {
	switch t {
	case quantityType, timeType, microTimeType, intOrStringType, fieldsType, rawExtType:
		return true
	}
	return false
}

// place is a value the mutator can change: set writes it back (a map entry is not addressable).
type place struct {
	v   reflect.Value
	set func(reflect.Value)
}

// places lists what obj holds, depth first, at most limit of them.
func places(v reflect.Value, out []place, limit int) []place {
	if len(out) >= limit {
		return out
	}
	out = append(out, place{v: v, set: v.Set})
	if special(v.Type()) {
		return out
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			out = places(v.Elem(), out, limit)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out = places(v.Field(i), out, limit)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return out
		}
		for i := range v.Len() {
			out = places(v.Index(i), out, limit)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if len(out) >= limit {
				break
			}
			m, key := v, k
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			out = append(out, place{v: e, set: func(x reflect.Value) { m.SetMapIndex(key, x) }})
		}
	}
	return out
}

// mutate makes n random changes to obj, a pointer to a struct.
func (m *randMutator) mutate(obj any, n int) {
	root := reflect.ValueOf(obj).Elem()
	for range n {
		ps := places(root, nil, 4000)
		p := ps[m.r.Intn(len(ps))]
		m.change(p)
	}
	for _, p := range places(root, nil, 1<<20) {
		if p.v.Kind() == reflect.Pointer && !p.v.IsNil() && special(p.v.Type().Elem()) && writesNull(p.v) {
			p.set(reflect.Zero(p.v.Type()))
		}
	}
}

// writesNull reports whether v encodes as null: a pointer to a zero time does, and then decodes as
// no pointer, so JSON cannot carry it.
func writesNull(v reflect.Value) bool {
	b, err := json.Marshal(v.Interface())
	return err == nil && string(b) == "null"
}

func (m *randMutator) random(t reflect.Type) reflect.Value {
	v := reflect.New(t)
	m.fill.Fill(v.Interface())
	return v.Elem()
}

func (m *randMutator) change(p place) {
	v, t := p.v, p.v.Type()
	if special(t) || t.Kind() == reflect.Struct {
		switch m.r.Intn(3) {
		case 0:
			p.set(reflect.Zero(t))
		case 1:
			p.set(m.random(t))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() || m.r.Intn(2) == 0 {
			p.set(m.random(t))
		} else {
			p.set(reflect.Zero(t))
		}
	case reflect.String:
		s := reflect.New(t).Elem()
		s.SetString(randString(m.r))
		p.set(s)
	case reflect.Bool:
		b := reflect.New(t).Elem()
		b.SetBool(!v.Bool())
		p.set(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i := reflect.New(t).Elem()
		x := []int64{0, 1, -1, 7, math.MaxInt32, math.MinInt32, 1 << 53, 1<<53 + 1, math.MaxInt64}[m.r.Intn(9)]
		if i.OverflowInt(x) {
			x = 3
		}
		i.SetInt(x)
		p.set(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i := reflect.New(t).Elem()
		i.SetUint(uint64(m.r.Intn(300)))
		p.set(i)
	case reflect.Slice:
		m.changeSlice(p)
	case reflect.Map:
		m.changeMap(p)
	}
}

func (m *randMutator) changeSlice(p place) {
	v, t := p.v, p.v.Type()
	n := v.Len()
	s := reflect.MakeSlice(t, 0, n+2)
	switch op := m.r.Intn(8); {
	case op == 0:
		p.set(reflect.Zero(t)) // nil
	case op == 1:
		p.set(reflect.MakeSlice(t, 0, 0)) // empty
	case op == 2 && n > 0: // remove one, from anywhere
		i := m.r.Intn(n)
		s = reflect.AppendSlice(s, v.Slice(0, i))
		p.set(reflect.AppendSlice(s, v.Slice(i+1, n)))
	case op == 3 && n > 0: // insert one
		i := m.r.Intn(n + 1)
		s = reflect.AppendSlice(s, v.Slice(0, i))
		s = reflect.Append(s, m.random(t.Elem()))
		p.set(reflect.AppendSlice(s, v.Slice(i, n)))
	case op == 4 && n > 1: // swap two
		s = reflect.AppendSlice(s, v)
		i, j := m.r.Intn(n), m.r.Intn(n)
		x := reflect.New(t.Elem()).Elem()
		x.Set(s.Index(i))
		s.Index(i).Set(s.Index(j))
		s.Index(j).Set(x)
		p.set(s)
	case op == 5 && n > 0: // duplicate one (a key given twice in a keyed list)
		s = reflect.AppendSlice(s, v)
		p.set(reflect.Append(s, v.Index(m.r.Intn(n))))
	case op == 6 && n > 2: // keep a few from the middle
		i := 1 + m.r.Intn(n-2)
		p.set(reflect.AppendSlice(s, v.Slice(i, i+1)))
	default: // append
		s = reflect.AppendSlice(s, v)
		p.set(reflect.Append(s, m.random(t.Elem())))
	}
}

func (m *randMutator) changeMap(p place) {
	v, t := p.v, p.v.Type()
	c := reflect.MakeMapWithSize(t, v.Len()+1)
	for _, k := range v.MapKeys() {
		c.SetMapIndex(k, v.MapIndex(k))
	}
	keys := v.MapKeys()
	switch op := m.r.Intn(5); {
	case op == 0:
		p.set(reflect.Zero(t))
		return
	case op == 1:
		p.set(reflect.MakeMap(t))
		return
	case op == 2 && len(keys) > 0:
		c.SetMapIndex(keys[m.r.Intn(len(keys))], reflect.Value{})
	default:
		k := reflect.New(t.Key()).Elem()
		if k.Kind() != reflect.String {
			return
		}
		k.SetString(randString(m.r))
		c.SetMapIndex(k, m.random(t.Elem()))
	}
	p.set(c)
}
