package fleet

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"mamoru/alert"
	"mamoru/health"
)

var tokyo = time.FixedZone("JST", 9*3600)

// report is a fresh report of a device recording in its hours, 09:00 to
// 21:00 every day in Tokyo, sent at sent.
func report(state string, sent time.Time) *health.Report {
	return &health.Report{Version: health.Version, Store: "shop-1", Device: "counter-1", Label: "カウンター1", State: state,
		RecordingExpected: true, Hours: health.Hours{Recording: []string{"daily 09:00-21:00"}, Zone: "Asia/Tokyo"}, Sent: sent}
}

func TestJudge(t *testing.T) {
	noon := time.Date(2026, 11, 30, 12, 0, 0, 0, tokyo)
	night := time.Date(2026, 11, 30, 23, 0, 0, 0, tokyo)
	closedByRules := report("idle", noon)
	closedByRules.Closed = "outside recording hours"
	alwaysIdle := report("idle", noon)
	alwaysIdle.Hours = health.Hours{Zone: "Asia/Tokyo"}
	badZone := report("buffering", noon)
	badZone.Hours.Zone = "Mars/Olympus"
	tests := []struct {
		name string
		r    *health.Report
		age  time.Duration
		now  time.Time
		sent time.Duration // Sent less Last-Modified
		want Marks
	}{
		{"fresh, recording", report("buffering", noon), time.Minute, noon, 0, Marks{}},
		{"in an incident", report("incident", noon), time.Minute, noon, 0, Marks{}},
		{"silent in its hours", report("buffering", noon), 4 * time.Minute, noon, 0, Marks{Offline: true}},
		{"just under the limit", report("buffering", noon), 3 * time.Minute, noon, 0, Marks{}},
		{"silent after closing", report("buffering", noon), 2 * time.Hour, night, 0, Marks{Closed: true}},
		{"fault", report("fault", noon), time.Minute, noon, 0, Marks{NotRecording: true}},
		{"fault at night", report("fault", night), time.Minute, night, 0, Marks{NotRecording: true}},
		{"idle in its hours", report("idle", noon), time.Minute, noon, 0, Marks{NotRecording: true}},
		{"held off by its rules in its hours", closedByRules, time.Minute, noon, 0, Marks{NotRecording: true}},
		{"idle at night, as it should be", func() *health.Report { r := report("idle", night); r.RecordingExpected = false; return r }(), time.Minute, night, 0, Marks{}},
		{"idle with no hours", alwaysIdle, time.Minute, night, 0, Marks{NotRecording: true}},
		{"silent with no hours", alwaysIdle, time.Hour, night, 0, Marks{Offline: true}},
		{"clock 6 s fast", report("buffering", noon), time.Minute, noon, 6 * time.Second, Marks{ClockOff: true, ClockOffBy: 6 * time.Second}},
		{"clock 6 s slow", report("buffering", noon), time.Minute, noon, -6 * time.Second, Marks{ClockOff: true, ClockOffBy: -6 * time.Second}},
		{"clock 4 s off", report("buffering", noon), time.Minute, noon, 4 * time.Second, Marks{ClockOffBy: 4 * time.Second}},
		{"unreadable, fresh", nil, time.Minute, noon, 0, Marks{}},
		{"unreadable, silent", nil, time.Hour, noon, 0, Marks{Offline: true}},
	}
	for _, tt := range tests {
		var lastModified time.Time
		if tt.r != nil {
			lastModified = tt.r.Sent.Add(-tt.sent)
		}
		got := Judge(tt.r, tt.age, lastModified, tt.now, Options{})
		if got != tt.want {
			t.Errorf("%s: Judge = %+v, want %+v", tt.name, got, tt.want)
		}
	}
	got := Judge(badZone, time.Hour, noon, night, Options{})
	if !got.Offline || got.HoursErr == nil {
		t.Errorf("a report with an unknown zone, silent: Judge = %+v, want Offline (judged as always recording) and HoursErr", got)
	}
}

// rig is a Watch on a fake clock, and the events it published.
type rig struct {
	t      *testing.T
	clock  *clockwork.FakeClock
	watch  *Watch
	sent   []alert.Event
	refuse bool // publish refuses
}

func newRig(t *testing.T) *rig {
	c := clockwork.NewFakeClockAt(time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)) // 12:00 in Tokyo
	return &rig{t: t, clock: c, watch: NewWatch(c, 10*time.Minute)}
}

func (r *rig) publish(e alert.Event) bool {
	if r.refuse {
		return false
	}
	r.sent = append(r.sent, e)
	return true
}

// poll observes the device as last heard from at lastModified, judged now.
func (r *rig) poll(lastModified time.Time) {
	now := r.clock.Now()
	rep := report("buffering", lastModified)
	d := Device{Store: "shop-1", Device: "counter-1", Report: rep, LastModified: lastModified, Now: now, Age: now.Sub(lastModified)}
	d.Marks = Judge(rep, d.Age, lastModified, now, Options{})
	r.watch.Observe([]Device{d}, r.publish)
}

// names returns the events' names, and clears them.
func (r *rig) names() []alert.Name {
	var n []alert.Name
	for _, e := range r.sent {
		n = append(n, e.Name)
	}
	r.sent = nil
	return n
}

func (r *rig) want(when string, want ...alert.Name) {
	r.t.Helper()
	if got := r.names(); !slices.Equal(got, want) {
		r.t.Errorf("%s: events %v, want %v", when, got, want)
	}
}

// A device that stops reporting is said offline once, and online once
// when it reports again; the ids are name-based, the pair's the same
// episode.
func TestWatchOfflineOnline(t *testing.T) {
	r := newRig(t)
	last := r.clock.Now()
	for range 6 { // reporting every 30 s, polled every 30 s
		r.poll(last)
		r.clock.Advance(30 * time.Second)
		last = r.clock.Now()
	}
	r.want("reporting")
	silentFrom := last
	for range 6 { // 3 min of silence: not yet
		r.poll(silentFrom)
		r.clock.Advance(30 * time.Second)
	}
	r.want("3 min of silence")
	r.clock.Advance(time.Second)
	r.poll(silentFrom)
	offline := r.sent
	r.want("just over 3 min of silence", alert.DeviceOffline)
	for range 20 {
		r.clock.Advance(30 * time.Second)
		r.poll(silentFrom)
	}
	r.want("silent for 13 min")
	r.poll(r.clock.Now())
	online := r.sent
	r.want("back", alert.DeviceOnline)
	r.poll(r.clock.Now())
	r.want("still back")

	if offline[0].ID != EventID(alert.DeviceOffline, "shop-1/counter-1", silentFrom) || online[0].ID != EventID(alert.DeviceOnline, "shop-1/counter-1", silentFrom) {
		t.Errorf("ids %s, %s: not the name-based ids of the silence after %v", offline[0].ID, online[0].ID, silentFrom)
	}
	if offline[0].Label != "カウンター1" || offline[0].Time.Location().String() != "Asia/Tokyo" || offline[0].Details["last_seen"] == "" {
		t.Errorf("offline event %+v: want the label, the time in the device's zone and when it was last seen", offline[0])
	}
}

// A Wi-Fi that drops every few minutes makes one offline/online pair per
// cooldown, and a drop that outlasts the cooldown is said.
func TestWatchCooldown(t *testing.T) {
	r := newRig(t)
	flap := func() {
		silentFrom := r.clock.Now()
		r.clock.Advance(4 * time.Minute)
		r.poll(silentFrom)
		r.clock.Advance(time.Minute)
		r.poll(r.clock.Now())
	}
	r.poll(r.clock.Now())
	flap() // minute 0 to 5
	r.want("first drop", alert.DeviceOffline, alert.DeviceOnline)
	flap() // 5 to 10: within 10 min of the online
	r.want("second drop, in the cooldown")

	// A third drop, from minute 10, outlasts the cooldown's end (15).
	silentFrom := r.clock.Now()
	r.clock.Advance(4 * time.Minute)
	r.poll(silentFrom)
	r.want("third drop, still in the cooldown")
	r.clock.Advance(time.Minute)
	r.poll(silentFrom)
	r.want("third drop, the cooldown over", alert.DeviceOffline)
	r.clock.Advance(time.Minute)
	r.poll(r.clock.Now())
	r.want("back", alert.DeviceOnline)
}

// A device that goes quiet at closing pages nobody; one that is not heard
// from when its hours begin is offline.
func TestWatchClosed(t *testing.T) {
	r := newRig(t)
	// 20:58 in Tokyo: its last report two minutes before closing.
	r.clock.Advance(8*time.Hour + 58*time.Minute)
	closing := r.clock.Now()
	r.poll(closing)
	for range 12 * 12 { // every 5 min until 08:58
		r.clock.Advance(5 * time.Minute)
		r.poll(closing)
	}
	r.want("the night")
	r.clock.Advance(5 * time.Minute) // 09:03
	r.poll(closing)
	r.want("hours begun, not heard from", alert.DeviceOffline)
	r.clock.Advance(10 * time.Minute)
	r.poll(r.clock.Now())
	r.want("heard from", alert.DeviceOnline)

	// An offline device that is closed again says nothing until heard.
	r = newRig(t)
	r.clock.Advance(8*time.Hour + 50*time.Minute) // 20:50
	last := r.clock.Now()
	r.clock.Advance(5 * time.Minute)
	r.poll(last)
	r.want("silent at 20:55", alert.DeviceOffline)
	r.clock.Advance(time.Hour)
	r.poll(last)
	r.want("closed since")
}

// A restart with the state on disk says nothing again; a first start says
// a device already offline once. An event publish refuses is raised at
// the next scan.
func TestWatchRestart(t *testing.T) {
	r := newRig(t)
	state := filepath.Join(t.TempDir(), "watch.json")
	silentFrom := r.clock.Now().Add(-time.Hour)
	r.refuse = true
	r.poll(silentFrom)
	r.want("published nothing")
	r.refuse = false
	r.poll(silentFrom)
	r.want("first start, already offline", alert.DeviceOffline)
	if err := r.watch.Save(state); err != nil {
		t.Fatal(err)
	}

	w, err := LoadWatch(state, r.clock, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r.watch = w
	r.clock.Advance(time.Minute)
	r.poll(silentFrom)
	r.want("restarted, still offline")
	r.poll(r.clock.Now())
	r.want("restarted, back", alert.DeviceOnline)
	if err := r.watch.Save(state); err != nil {
		t.Fatal(err)
	}

	// In the cooldown across a restart too.
	w, _ = LoadWatch(state, r.clock, 10*time.Minute)
	r.watch = w
	back := r.clock.Now()
	r.clock.Advance(4 * time.Minute)
	r.poll(back)
	r.want("restarted in the cooldown, silent again")
}

// What a Watch remembers is bounded by the devices with something to
// remember: a thousand devices reporting leave it empty, and one gone from
// the bucket is forgotten.
func TestWatchForgets(t *testing.T) {
	c := clockwork.NewFakeClockAt(time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC))
	w := NewWatch(c, time.Minute)
	devices := make([]Device, 1000)
	for i := range devices {
		now := c.Now()
		devices[i] = Device{Store: "s", Device: string(rune('a'+i%26)) + time.Duration(i).String(), LastModified: now.Add(-time.Hour), Now: now, Age: time.Hour}
		devices[i].Marks = Judge(nil, time.Hour, devices[i].LastModified, now, Options{})
	}
	w.Observe(devices, func(alert.Event) bool { return true })
	if n := len(w.Offline()); n != 1000 {
		t.Fatalf("%d devices offline, want 1000", n)
	}
	w.Observe(devices[:10], func(alert.Event) bool { return true })
	if n := len(w.devices); n != 10 {
		t.Errorf("after 990 devices left the bucket, %d remembered, want 10", n)
	}
	for i := range devices[:10] {
		devices[i].LastModified, devices[i].Age, devices[i].Marks = c.Now(), 0, Marks{}
	}
	w.Observe(devices[:10], func(alert.Event) bool { return true })
	c.Advance(2 * time.Minute)
	w.Observe(devices[:10], func(alert.Event) bool { return true })
	if n := len(w.devices); n != 0 {
		t.Errorf("back and past the cooldown, %d remembered, want 0", n)
	}
}
