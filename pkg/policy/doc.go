// Package policy turns the KaiwoPolicy objects admins write into the one effective policy the mutation applies to a namespace.
package policy
