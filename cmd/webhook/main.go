// Command webhook is the Kaiwo admission webhook: `serve` runs it in a cluster, `mutate` previews it offline.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: webhook <command> [flags]

commands:
  serve    run the admission webhook server (webhook serve -h)
  mutate   mutate manifests offline and print the result (webhook mutate -h)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stderr)
	case "mutate":
		return runMutate(args[1:], stdin, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n%s", args[0], usage)
	return 2
}
