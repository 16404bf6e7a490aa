// Package controller keeps the policy index current from informers and keeps each covered namespace's LocalQueue.
package controller
