package annotations

import (
	"fmt"
	"strings"
)

// Table renders the keys as the Markdown table the README carries.
func Table() string {
	var b strings.Builder
	b.WriteString("| key | where | value | meaning |\n|---|---|---|---|\n")
	for _, k := range All {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Name, k.Where, k.Value, k.Doc)
	}
	return b.String()
}
