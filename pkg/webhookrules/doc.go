// Package webhookrules renders the webhook configurations (config/webhook and the Helm chart's templates)
// from a kind registry: a mutating webhook per handled kind, a validating webhook per handled kind, per
// scale subresource and per GPU-capable kind not handled, with the CEL match conditions that read each
// kind's pod-template paths and the controller owners. It is pure; hack/webhookrules writes the files
// (`make generate`) and this package's test fails when the checked-in files differ from what it renders.
package webhookrules
