// Package controller keeps the policy index current from informers, keeps each covered namespace's
// LocalQueue, writes each KaiwoPolicy's status, and watches discovery: it starts what needs Kueue once
// Kueue's API is served, and reports which of the registry's kinds the API server serves.
package controller
