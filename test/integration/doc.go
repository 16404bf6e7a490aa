// Package integration runs the webhook server against a real kube-apiserver (envtest) with the webhook configuration from config/webhook.
package integration
