package device

import (
	"context"
	"errors"
	"sync"
	"time"

	"mamoru/alert"
	"mamoru/config"
)

// ErrNotProbed means a target's kind cannot show it would be reached
// without sending an alert.
var ErrNotProbed = errors.New("this kind of target cannot be checked without sending an alert")

// AlertProbe is what probing one alert target found.
type AlertProbe struct {
	Index  int // the target's place among cfg's, from 0
	Target config.Target
	Took   time.Duration
	// Err is nil when the target was reached; a *alert.Permanent says
	// what to fix; ErrNotProbed when the kind cannot be probed.
	Err error
}

// ProbeAlerts probes every alert target cfg names, all at once, each
// bounded by ctx and its own timeout, sending nothing a person reads (see
// alert.Prober). cfg's secrets must be loaded.
func ProbeAlerts(ctx context.Context, cfg config.Config) []AlertProbe {
	probes := make([]AlertProbe, len(cfg.Alerts.Targets))
	var wg sync.WaitGroup
	for i, t := range cfg.Alerts.Targets {
		probes[i] = AlertProbe{Index: i, Target: t}
		target, err := newTarget(cfg.Device, t, everyEvent, nil)
		if err != nil {
			probes[i].Err = err
			continue
		}
		p, ok := target.(alert.Prober)
		if !ok {
			probes[i].Err = ErrNotProbed
			continue
		}
		wg.Go(func() {
			start := time.Now()
			probes[i].Err = p.Probe(ctx)
			probes[i].Took = time.Since(start)
		})
	}
	wg.Wait()
	return probes
}
