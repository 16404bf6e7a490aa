// Package policy validates and compiles the KaiwoPolicy objects admins write, merges the ones that select a
// namespace into the one effective policy the core applies there, and keeps the index that answers it per
// namespace (fed by pkg/controller); it also loads policies from files for the offline command.
package policy
