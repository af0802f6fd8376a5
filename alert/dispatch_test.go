package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mamoru/alert/mqtttest"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

// runDispatcher runs d until the test ends.
func runDispatcher(t testing.TB, d *Dispatcher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func route(t testing.TB, patterns []string, target Target, accepted chan<- Event) Route {
	t.Helper()
	f, err := NewFilter(patterns)
	if err != nil {
		t.Fatal(err)
	}
	o := QueueOptions{Log: quiet}
	if accepted != nil {
		o.Accepted = func(e Event) { accepted <- e }
	}
	q, err := OpenQueue(t.TempDir(), target, o)
	if err != nil {
		t.Fatal(err)
	}
	return Route{Filter: f, Queue: q}
}

func TestDispatcherRoutes(t *testing.T) {
	incidents, manager := newReceiver(t), newReceiver(t)
	toIncidents, toManager := make(chan Event, 10), make(chan Event, 10)
	d := NewDispatcher([]Route{
		route(t, []string{"incident.*"}, webhookTo(t, incidents.URL, nil), toIncidents),
		route(t, nil, webhookTo(t, manager.URL, nil), toManager),
	}, DispatcherOptions{Log: quiet})
	runDispatcher(t, d)
	now := time.Now()
	nobody := origin.Event(ClockUnsynced, now)
	started := origin.IncidentEvent(IncidentStarted, now, "i", now)
	saved := origin.IncidentEvent(IncidentSaved, now, "i", now)
	fault := origin.Event(DeviceFault, now)
	for _, e := range []Event{nobody, started, saved, fault} {
		if !d.Publish(e) {
			t.Fatalf("Publish(%s) = false", e.Name)
		}
	}
	tests := []struct {
		name     string
		accepted chan Event
		r        *receiver
		want     []Event
	}{
		{"incident.*", toIncidents, incidents, []Event{started, saved}},
		{"the default", toManager, manager, []Event{started, fault}},
	}
	for _, tt := range tests {
		for range tt.want {
			wait(t, tt.accepted, "an event for "+tt.name)
		}
		if got := receivedEvents(t, tt.r, time.Now()); !slices.Equal(ids(got), ids(tt.want)) {
			t.Errorf("%s received %v, want %v", tt.name, ids(got), ids(tt.want))
		}
	}
	st := d.Status()
	if len(st.Targets) != 2 || st.Targets[0].Delivered != 2 || st.Targets[1].Delivered != 2 || st.Dropped != 0 || st.Lost != 0 {
		t.Errorf("Status = %+v, want 2 delivered to each, nothing dropped or lost", st)
	}
}

// TestDispatcherQueuesAtStop: what was published before Run's end is on
// the card when Run returns.
func TestDispatcherQueuesAtStop(t *testing.T) {
	r := route(t, []string{"*"}, nil, nil)
	d := NewDispatcher([]Route{r}, DispatcherOptions{Log: quiet})
	for range 3 {
		d.Publish(origin.Event(SpoolFull, time.Now()))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	d.Run(ctx)
	if got := r.Queue.Status().Pending; got != 3 {
		t.Errorf("Pending after Run ended = %d, want the 3 published", got)
	}
}

// TestPublishNeverBlocks: neither a dispatcher that is not running nor a
// target that never answers holds up Publish.
func TestPublishNeverBlocks(t *testing.T) {
	stuck := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-stuck }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stuck) }) // runs first: the handlers end, then the server
	accepted := make(chan Event, 1)

	idle := NewDispatcher([]Route{route(t, nil, webhookTo(t, srv.URL, nil), accepted)}, DispatcherOptions{Buffer: 4, Log: quiet})
	var ok int
	for range 10000 {
		if idle.Publish(origin.Event(DeviceFault, time.Now())) {
			ok++
		}
	}
	if st := idle.Status(); ok != 4 || st.Dropped != 10000-4 {
		t.Errorf("not running: %d published, %d dropped; want 4 and the rest", ok, st.Dropped)
	}

	running := NewDispatcher([]Route{route(t, nil, webhookTo(t, srv.URL, nil), accepted)}, DispatcherOptions{Log: quiet})
	runDispatcher(t, running)
	for range 10000 {
		running.Publish(origin.Event(DeviceFault, time.Now()))
	}
	select {
	case e := <-accepted:
		t.Errorf("a target that never answers accepted %s", e.ID)
	default:
	}
}

// BenchmarkPublishToReceiver measures a press's alert from Publish to a
// local receiver's handler, through the queue's fsynced file and a POST on
// loopback: the p50 and p99 over 100 presses, one after another as a
// counter's presses come, for a signed webhook, for ntfy (a local
// receiver in ntfy's place: ntfy's server is not on this machine's module
// proxy), and for MQTT (a real mosquitto, and a subscriber on the events
// topic).
func BenchmarkPublishToReceiver(b *testing.B) {
	for _, kind := range []string{"webhook", "ntfy", "mqtt"} {
		b.Run(kind, func(b *testing.B) {
			// The receiver passes on what identifies the press: the
			// webhook's id, or ntfy's Click, the incident's link.
			got := make(chan string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				got <- r.Header.Get("Webhook-Id") + r.Header.Get("Click")
			}))
			defer srv.Close()
			var target Target = webhookTo(b, srv.URL, nil)
			switch kind {
			case "ntfy":
				n, err := NewNtfy(NtfyOptions{URL: srv.URL + "/topic"})
				if err != nil {
					b.Fatal(err)
				}
				target = n
			case "mqtt":
				broker := mqtttest.Start(b, nil)
				m, err := NewMQTT(MQTTOptions{URL: "mqtt://" + broker.Addr, Store: origin.Store, Device: origin.Device})
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				target = m
				msgs := broker.Subscribe(m.topic + "/events")
				go func() {
					for msg := range msgs {
						var e Event
						_ = json.Unmarshal([]byte(msg.Payload), &e)
						got <- e.ID
					}
				}()
			}
			// No Accepted: a channel nobody drains would, once full, hold up
			// the queue (Accepted must not block) and the benchmark with it.
			d := NewDispatcher([]Route{route(b, nil, target, nil)}, DispatcherOptions{Log: quiet})
			runDispatcher(b, d)
			var latencies []time.Duration
			n := 0
			for b.Loop() {
				for range 100 {
					n++
					start := time.Now()
					e := origin.IncidentEvent(IncidentStarted, start, fmt.Sprintf("press-%d", n), start)
					if !d.Publish(e) {
						b.Fatal("Publish dropped an event")
					}
					if id := wait(b, got, "the event received"); id != e.ID && id != e.Link {
						b.Fatalf("received %s, want %s", id, e.ID)
					}
					latencies = append(latencies, time.Since(start))
				}
			}
			slices.Sort(latencies)
			pct := func(p float64) float64 {
				return float64(latencies[int(p*float64(len(latencies)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}

// Put has the event on the card when it returns, with no Run to take it
// there: the queue opened afresh (after a power cut) holds it, and only in
// the queues whose filter takes it. One a queue cannot take is an error,
// counted as lost.
func TestDispatcherPutIsDurableAtOnce(t *testing.T) {
	incidents, devices := route(t, []string{"incident.*"}, webhookTo(t, "http://127.0.0.1:9/", nil), nil),
		route(t, []string{"device.*"}, webhookTo(t, "http://127.0.0.1:9/", nil), nil)
	d := NewDispatcher([]Route{incidents, devices}, DispatcherOptions{Log: quiet})
	now := time.Now()
	if err := d.Put(origin.IncidentEvent(IncidentStarted, now, "i", now)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		r    Route
		want int
	}{{"incident.*", incidents, 1}, {"device.*", devices, 0}} {
		q, err := OpenQueue(tc.r.Queue.dir, tc.r.Queue.target, QueueOptions{Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Status().Pending; got != tc.want {
			t.Errorf("the %s queue opened again: %d pending, want %d", tc.name, got, tc.want)
		}
	}
	if st := d.Status(); st.Lost != 0 || st.Dropped != 0 {
		t.Errorf("status %+v: nothing lost or dropped", st)
	}
	if err := d.Put(Event{Name: IncidentSaved}); err == nil || d.Status().Lost != 1 {
		t.Errorf("Put of an event with no id = %v, lost %d; want the queue's error, one lost", err, d.Status().Lost)
	}
}
