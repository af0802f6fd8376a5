package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/google/uuid"

	"mamoru/alert"
	"mamoru/clock"
	"mamoru/outbox"
)

// DefaultCooldown is how long after a device.online the next
// device.offline of the same device waits: a shop's Wi-Fi that drops every
// few minutes makes one pair of alerts in that time, not one per drop.
const DefaultCooldown = 10 * time.Minute

// Watch decides, scan after scan, which devices to say offline and which
// online again. It is a state machine: Observe is handed each scan's
// devices and reads the time from its clock alone, so a test moves the
// clock and never sleeps.
//
//   - A device whose report is older than the scan's OfflineAfter while
//     its hours say it should record (Marks.Offline) is said offline once,
//     by device.offline.
//   - One silent outside its hours (Marks.Closed) pages nobody: it is
//     expected to be off. If it does not come back when its hours begin,
//     it is Offline then.
//   - A device said offline is said online once, by device.online, when a
//     fresh report is read again; not when it is merely closed.
//   - After a device.online, the next device.offline of that device waits
//     until Cooldown has passed since; if the device is heard from before
//     then, nothing is said at all.
//   - A device whose report cannot be had (Device.LastModified is zero) is
//     left as it was.
//
// Each event's id is a name-based UUID of the device and the Last-Modified
// of its last report before the silence, so an event raised again after a
// crash, before the state reached the disk, is the same event to every
// queue and receiver.
//
// What it remembers, kept by Save and read back by LoadWatch, is only the
// devices said offline and those in their cooldown: a restart says nothing
// again, and its memory stays bounded by the devices with something to
// remember. The first start with no state says each device already offline
// once.
//
// A Watch is used by one goroutine.
type Watch struct {
	clock    clock.Clock
	cooldown time.Duration
	devices  map[string]*watched // by store/device
	gen      uint64              // the number of Observe calls, to sweep devices gone
	changed  bool                // devices changed since the last Save
}

// watched is what a Watch remembers of a device.
type watched struct {
	// Offline: device.offline was said, device.online not yet.
	Offline bool `json:"offline,omitempty"`
	// Since is the Last-Modified of its last report before the silence:
	// it names the episode in the events' ids.
	Since time.Time `json:"since,omitzero"`
	// OnlineAt is when device.online was last said, on the watch's clock.
	OnlineAt time.Time `json:"online_at,omitzero"`
	gen      uint64    // the Observe call that last saw it
}

// stateFile is a Watch on disk.
type stateFile struct {
	Version int                 `json:"version"`
	Devices map[string]*watched `json:"devices"`
}

const stateVersion = 1

// ErrWatched means another watch holds the state directory (LockState).
var ErrWatched = errors.New("another fleet watch runs on this state directory")

// NewWatch returns a Watch that remembers nothing, on clk; cooldown 0 is
// DefaultCooldown.
func NewWatch(clk clock.Clock, cooldown time.Duration) *Watch {
	if cooldown <= 0 {
		cooldown = DefaultCooldown
	}
	return &Watch{clock: clock.Or(clk), cooldown: cooldown, devices: map[string]*watched{}}
}

// LoadWatch returns the Watch saved at path, or NewWatch's if there is no
// file yet.
func LoadWatch(path string, clk clock.Clock, cooldown time.Duration) (*Watch, error) {
	w := NewWatch(clk, cooldown)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return w, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: watch state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != stateVersion {
		return nil, fmt.Errorf("fleet: watch state %s is not one this version wrote (remove it to start afresh: devices already offline are then said so once more): %v", path, err)
	}
	for k, d := range f.Devices {
		if d != nil {
			w.devices[k] = d
		}
	}
	return w, nil
}

// Save writes what w remembers to path, whole or not at all, if it changed
// since the last Save.
func (w *Watch) Save(path string) error {
	if !w.changed {
		return nil
	}
	b, err := json.MarshalIndent(stateFile{Version: stateVersion, Devices: w.devices}, "", "  ")
	if err != nil {
		return fmt.Errorf("fleet: watch state: %w", err)
	}
	if err := outbox.WriteFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("fleet: watch state: %w", err)
	}
	w.changed = false
	return nil
}

// Offline returns the devices w has said offline and not yet online, as
// store/device.
func (w *Watch) Offline() []string {
	var names []string
	for k, d := range w.devices {
		if d.Offline {
			names = append(names, k)
		}
	}
	return names
}

// Observe judges one scan's devices, which must be every device in the
// bucket (a device missing from it is forgotten), and hands each alert to
// publish. An alert publish refuses (false) changes nothing: the next scan
// raises it again.
func (w *Watch) Observe(devices []Device, publish func(alert.Event) bool) {
	now := w.clock.Now()
	w.gen++
	for i := range devices {
		d := &devices[i]
		key := d.Name()
		st := w.devices[key]
		if st != nil {
			st.gen = w.gen
		}
		if d.LastModified.IsZero() {
			continue // no report to judge by
		}
		switch {
		case d.Offline:
			if st != nil && st.Offline {
				continue
			}
			if st != nil && !st.OnlineAt.IsZero() && now.Before(st.OnlineAt.Add(w.cooldown)) {
				continue // flapping: wait out the cooldown
			}
			if !publish(event(d, alert.DeviceOffline, d.LastModified, offlineDetails(d))) {
				continue
			}
			if st == nil {
				st = &watched{gen: w.gen}
				w.devices[key] = st
			}
			st.Offline, st.Since = true, d.LastModified
			w.changed = true
		case d.Closed:
			// Expected to be off: nothing to say, and an offline device
			// stays so until it is heard from.
		default:
			if st == nil || !st.Offline {
				continue
			}
			if !publish(event(d, alert.DeviceOnline, st.Since, onlineDetails(d, st.Since))) {
				continue
			}
			st.Offline, st.OnlineAt = false, now
			w.changed = true
		}
	}
	for k, st := range w.devices {
		cooled := !st.Offline && !now.Before(st.OnlineAt.Add(w.cooldown))
		if st.gen != w.gen || cooled {
			delete(w.devices, k)
			w.changed = true
		}
	}
}

// episodeSpace is the namespace of the events' name-based UUIDs.
var episodeSpace = uuid.MustParse("3d0f6a52-9c1e-4b7d-8e25-71a4c6b90f13")

// EventID is the id of the event name about device (store/device) going
// silent after its report of since: the same whoever raises it, however
// often.
func EventID(name alert.Name, device string, since time.Time) string {
	return uuid.NewSHA1(episodeSpace, []byte(string(name)+" "+device+" "+since.UTC().Format(time.RFC3339Nano))).String()
}

// event is the alert name about d, the silence that began after its
// report of since; it happened at the scan, by the server's clock.
func event(d *Device, name alert.Name, since time.Time, details map[string]string) alert.Event {
	o := alert.Origin{Store: d.Store, Device: d.Device, Zone: d.Zone()}
	if d.Report != nil {
		o.Label = d.Report.Label
	}
	e := o.Event(name, d.Now)
	e.ID = EventID(name, d.Name(), since)
	e.Details = details
	return e
}

func offlineDetails(d *Device) map[string]string {
	return map[string]string{
		"last_seen": d.LastModified.In(d.Zone()).Format(time.RFC3339),
		"reason":    fmt.Sprintf("no health report for %s", d.Age.Round(time.Second)),
	}
}

func onlineDetails(d *Device, since time.Time) map[string]string {
	return map[string]string{
		"last_seen":    d.LastModified.In(d.Zone()).Format(time.RFC3339),
		"silent_since": since.In(d.Zone()).Format(time.RFC3339),
		"reason":       fmt.Sprintf("a health report again, after %s", d.LastModified.Sub(since).Round(time.Second)),
	}
}
