package typedpatch

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// rawDoc reads raw by JSON pointer, remembering each container it reached. A container read often is
// indexed once, its elements or members by position or key, so that reading each element of a long
// list costs the same as reading the first: gjson finds the i-th element by walking the i before it.
type rawDoc struct {
	root gjson.Result
	seen map[string]*rawNode // each container reached, by pointer
}

// rawNode is one container of raw; elems or members is its index, built on the indexAfter-th read.
type rawNode struct {
	raw     string
	reads   int
	elems   []string          // an array's elements
	members map[string]string // an object's members, the first of a duplicate key, as gjson reads it
}

// indexAfter is how many reads of a container's children go to gjson before the container is indexed:
// small containers are never indexed, long ones are read in linear time.
const indexAfter = 8

func newRawDoc(raw []byte) *rawDoc {
	return &rawDoc{root: parseView(raw), seen: map[string]*rawNode{}}
}

// parseView parses raw in place, without the copy gjson.ParseBytes makes: raw is only read, and the
// results do not outlive it.
func parseView(raw []byte) gjson.Result {
	return gjson.Parse(unsafe.String(unsafe.SliceData(raw), len(raw)))
}

// at is the value at the JSON pointer p; it does not exist when raw has nothing there.
func (d *rawDoc) at(p string) gjson.Result {
	if p == "" {
		return d.root
	}
	if n, ok := d.seen[p]; ok {
		return gjson.Parse(n.raw) // a container: its type is its first byte, nothing is scanned
	}
	i := strings.LastIndexByte(p, '/')
	r := d.child(p[:i], p[i+1:])
	if r.IsObject() || r.IsArray() {
		d.seen[p] = &rawNode{raw: r.Raw} // containers are read again, leaves once
	}
	return r
}

// reached reports whether p is a container that at has read.
func (d *rawDoc) reached(p string) bool {
	_, ok := d.seen[p]
	return ok
}

// child is the member or element seg of the container at parent.
func (d *rawDoc) child(parent, seg string) gjson.Result {
	pr := d.at(parent)
	n := d.seen[parent]
	if n == nil { // the root, or not a container
		if !pr.IsObject() && !pr.IsArray() {
			return gjson.Result{}
		}
		n = &rawNode{raw: pr.Raw}
		d.seen[parent] = n
	}
	n.reads++
	switch {
	case pr.IsObject():
		key := unescapePointer(seg)
		if n.members == nil && n.reads > indexAfter {
			n.members = map[string]string{}
			pr.ForEach(func(k, v gjson.Result) bool {
				if _, dup := n.members[k.String()]; !dup {
					n.members[k.String()] = v.Raw
				}
				return true
			})
		}
		if n.members != nil {
			if v, ok := n.members[key]; ok {
				return gjson.Parse(v)
			}
			return gjson.Result{}
		}
		var r gjson.Result
		if key == "" { // gjson's path syntax cannot name it
			pr.ForEach(func(k, v gjson.Result) bool {
				if k.String() == key {
					r = v
				}
				return true
			})
			return r
		}
		return pr.Get(gjson.Escape(key))
	case pr.IsArray():
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 || strconv.Itoa(i) != seg {
			return gjson.Result{}
		}
		if n.elems == nil && (n.reads > indexAfter || i >= indexAfter) {
			n.elems = []string{}
			pr.ForEach(func(_, v gjson.Result) bool {
				n.elems = append(n.elems, v.Raw)
				return true
			})
		}
		if n.elems != nil {
			if i < len(n.elems) {
				return gjson.Parse(n.elems[i])
			}
			return gjson.Result{}
		}
		return pr.Get(seg)
	}
	return gjson.Result{}
}
