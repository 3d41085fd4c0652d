package approval

import (
	"context"
	"log/slog"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/store"
)

// FromConfig builds the Service for `weir serve` from cfg.Approvals, with
// an HTTPNotifier for approvals.notify (URLs read from the environment;
// nil when none is configured). The caller runs svc.Start(interval) and, on
// shutdown, svc.Close() and notifier.Close(ctx).
func FromConfig(cfg *config.Config, st store.ApprovalStore, auditFn func(context.Context, audit.Event) error, log *slog.Logger) (*Service, *HTTPNotifier, error) {
	dests, err := DestinationsFromConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	opts := OptionsFromConfig(cfg)
	opts.Store, opts.Audit, opts.Logger = st, auditFn, log
	var n *HTTPNotifier
	if len(dests) > 0 {
		n = NewNotifier(dests, NotifierOptions{Logger: log})
		opts.Notifier = n
	}
	svc, err := New(opts)
	if err != nil {
		return nil, nil, err
	}
	return svc, n, nil
}
