// Package startup starts the server in clusters that are not ready for it yet: without Kueue's API
// (installed later, picked up without a restart), and with a ServiceAccount that cannot read
// policies yet (unready, and refusing, until it can). envtest; skipped under -short.
package startup
