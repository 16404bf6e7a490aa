// Package v1alpha1 holds the KaiwoPolicy API (kaiwo.silogen.ai/v1alpha1) that cluster admins write to set Kaiwo defaults and limits per namespace.
package v1alpha1
