// Command webhookrules writes the webhook configurations that pkg/webhookrules renders from the built-in
// kind registry, under the repository root given by -out (default: the current directory).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
	"github.com/silogen/kaiwo-webhook/pkg/webhookrules"
)

func main() {
	out := flag.String("out", ".", "repository root to write the files under")
	flag.Parse()
	files, err := webhookrules.Files(mutate.Builtin())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for path, b := range files {
		p := filepath.Join(*out, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
