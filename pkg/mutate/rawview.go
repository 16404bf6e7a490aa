package mutate

import (
	"unsafe"

	"github.com/tidwall/gjson"
)

// parseView parses raw in place, without the copy gjson.ParseBytes makes: raw is only read, and the
// results do not outlive it.
func parseView(raw []byte) gjson.Result {
	return gjson.Parse(unsafe.String(unsafe.SliceData(raw), len(raw)))
}
