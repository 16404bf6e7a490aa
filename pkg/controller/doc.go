// Package controller keeps the policy index current from informers, keeps each covered namespace's LocalQueue, and writes each KaiwoPolicy's status.
package controller
