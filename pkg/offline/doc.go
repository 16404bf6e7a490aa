// Package offline runs the admission mutation on manifest files, with no cluster, for previews and CI.
package offline
