package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// ErrShuttingDown is the readiness failure of a replica that received SIGTERM and drains.
var ErrShuttingDown = errors.New("shutting down")

// Drain is a graceful shutdown in two steps. On the first signal the replica turns unready (so
// endpoints stop sending it new connections) but keeps serving, in-flight and new requests alike,
// for the drain delay, while the API server's existing connections move away; then the manager's
// context is cancelled, and the manager stops the webhook server last, which finishes the requests
// in flight (the manager's GracefulShutdownTimeout bounds that).
type Drain struct {
	draining atomic.Bool
}

// Ready is a readiness check that fails once draining began.
func (d *Drain) Ready(*http.Request) error {
	if d.draining.Load() {
		return ErrShuttingDown
	}
	return nil
}

// Draining reports whether a shutdown signal arrived.
func (d *Drain) Draining() bool { return d.draining.Load() }

// Wrap answers every request through h; while draining, each response closes its connection, so a
// client holding a keep-alive connection to this replica opens a new one, to a ready replica.
func (d *Drain) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// Context returns a context that is cancelled delay after the first signal on signals, or at once
// when parent ends. The first signal turns the replica unready; a second one cancels at once, and
// a third exits the process (as controller-runtime's signal handler does).
func (d *Drain) Context(parent context.Context, delay time.Duration, signals <-chan os.Signal, log logr.Logger) context.Context {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-ctx.Done():
			return
		case s := <-signals:
			d.draining.Store(true)
			log.Info("signal received: unready, serving for the drain delay before shutting down", "signal", s.String(), "delay", delay)
		}
		select {
		case <-time.After(delay):
		case <-signals:
		case <-ctx.Done():
		}
		log.Info("shutting down: the webhook server finishes the requests in flight")
		cancel()
		<-signals
		os.Exit(1)
	}()
	return ctx
}
