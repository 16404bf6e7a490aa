package bench

import jsonpatch "github.com/evanphx/json-patch/v5"

func applyJSONPatch(raw, patch []byte) ([]byte, error) {
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, err
	}
	return p.Apply(raw)
}
