// Package offline runs the admission mutation and then the validating webhook's checks on manifest
// files, with no cluster, for previews and CI (`webhook mutate`).
package offline
