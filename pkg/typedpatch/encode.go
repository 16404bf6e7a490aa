package typedpatch

import (
	"bytes"
	"encoding/json"
	"fmt"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
)

// Encode writes ops as JSON, byte for byte as encoding/json writes them, in one pass: each value
// encoded once, without the re-scan encoding/json gives what a MarshalJSON method returns.
func Encode(ops []Operation) ([]byte, error) {
	if ops == nil {
		return []byte("null"), nil
	}
	var buf bytes.Buffer
	buf.Grow(96*len(ops) + 2)
	enc := json.NewEncoder(&buf) // escapes as json.Marshal does; ends each value with a newline, cut below
	put := func(v any) error {
		if err := enc.Encode(v); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1)
		return nil
	}
	buf.WriteByte('[')
	for i, op := range ops {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"op":`)
		if err := put(op.Operation); err != nil {
			return nil, err
		}
		buf.WriteString(`,"path":`)
		if err := put(op.Path); err != nil {
			return nil, err
		}
		if op.Value != nil || op.Operation == "add" || op.Operation == "replace" {
			buf.WriteString(`,"value":`)
			if err := put(op.Value); err != nil {
				return nil, fmt.Errorf("encoding the value of %s %s: %w", op.Operation, op.Path, err)
			}
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

// Apply applies ops to raw, as the API server would (with github.com/evanphx/json-patch).
func Apply(raw []byte, ops []Operation) ([]byte, error) {
	if len(ops) == 0 {
		return raw, nil
	}
	b, err := Encode(ops)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatchapply.DecodePatch(b)
	if err != nil {
		return nil, err
	}
	return p.Apply(raw)
}
