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
	return eachTarget(cfg, func(target alert.Target) error {
		p, ok := target.(alert.Prober)
		if !ok {
			return ErrNotProbed
		}
		return p.Probe(ctx)
	})
}

// TestAlerts sends every alert target cfg names a test alert (alert.test)
// at once, directly rather than through the queues, so that an installer
// sees each arrive: on a phone, in a mailbox, in Home Assistant. An MQTT
// target's goes on its events topic only (alert.TestSender). source says
// who sent it, as the event's trigger source.
func TestAlerts(ctx context.Context, cfg config.Config, source string) []AlertProbe {
	e := OriginOf(cfg).Event(alert.AlertTest, time.Now())
	e.Source = source
	return eachTarget(cfg, func(target alert.Target) error {
		if ts, ok := target.(alert.TestSender); ok {
			return ts.SendTest(ctx, e)
		}
		return target.Send(ctx, e)
	})
}

// OriginOf is where cfg's device's alerts come from.
func OriginOf(cfg config.Config) alert.Origin {
	return alert.Origin{Store: cfg.Device.Store, Device: cfg.Device.ID, Label: cfg.Device.Label,
		Zone: cfg.Location(), ConsoleURL: cfg.Alerts.ConsoleURL}
}

// eachTarget builds each of cfg's alert targets and runs do on them all
// at once, timing each.
func eachTarget(cfg config.Config, do func(alert.Target) error) []AlertProbe {
	probes := make([]AlertProbe, len(cfg.Alerts.Targets))
	var wg sync.WaitGroup
	for i, t := range cfg.Alerts.Targets {
		probes[i] = AlertProbe{Index: i, Target: t}
		target, err := newTarget(cfg.Device, t, everyEvent, nil)
		if err != nil {
			probes[i].Err = err
			continue
		}
		wg.Go(func() {
			start := time.Now()
			probes[i].Err = do(target)
			probes[i].Took = time.Since(start)
		})
	}
	wg.Wait()
	return probes
}
