// Package testenv starts what the API-server tests share: envtest with our CRDs and config/webhook, and the webhook server in-process.
package testenv
