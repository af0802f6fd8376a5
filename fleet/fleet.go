// Package fleet is the managers' view of every device in a bucket, from
// the health report each keeps there (package health): which record,
// which are closed for the night, which have gone silent, and which have
// a clock that is off.
//
// Scan finds the devices by listing with a delimiter, <prefix>/ for the
// stores and <prefix>/<store>/ for their devices, never by walking every
// clip, and reads their reports concurrently, a bounded number at a time.
// A device's age is measured on the server's clock: the Date of the answer
// that brought its report, against the report's Last-Modified, which the
// server set. The manager's own clock is never asked, unless the server
// sent no Date (Device.AgeClock then says so).
//
// Watch turns successive scans into device.offline and device.online
// alerts; it is a state machine on an injected clock, kept on disk so that
// a restart sends nothing twice.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/config"
	"mamoru/health"
)

// Defaults of Options.
const (
	// DefaultOfflineAfter is how old a report is when its device is
	// silent: three of the device's report intervals.
	DefaultOfflineAfter = 3 * health.Interval
	// DefaultClockSkew is how far a report's Sent may be from the
	// server's Last-Modified before the device's clock is said to be off.
	DefaultClockSkew = 5 * time.Second
	// DefaultConcurrency is how many reports Scan reads at a time.
	DefaultConcurrency = 16
)

// The clocks an age may be measured on (Device.AgeClock).
const (
	ServerClock = "server" // the Date of the server's answer
	LocalClock  = "local"  // this machine's: the server sent no Date
)

// Options tune a scan and its judgement. The zero value is the defaults.
type Options struct {
	OfflineAfter time.Duration // 0: DefaultOfflineAfter
	ClockSkew    time.Duration // 0: DefaultClockSkew
	Concurrency  int           // 0: DefaultConcurrency
	// Now reads this machine's clock, used only when the server sends no
	// Date; nil is time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.OfflineAfter <= 0 {
		o.OfflineAfter = DefaultOfflineAfter
	}
	if o.ClockSkew <= 0 {
		o.ClockSkew = DefaultClockSkew
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// ErrNoReport means a device's folder holds no health.json: a device of a
// version that writes none, or one that has not written its first yet.
var ErrNoReport = errors.New("no health report")

// Device is one device found in the bucket, and what its report says.
type Device struct {
	// Store and Device are where its folder is in the bucket, which is
	// what a report is judged by; Report.Store and Report.Device are what
	// the device says.
	Store, Device string
	Key           string // the report's object key
	// Report is nil when Err says why: ErrNoReport, a report that fails
	// health.Parse (the error names Key), or the server's refusal.
	Report *health.Report
	Err    error
	// LastModified is when the server stored the report, by its clock;
	// zero without one.
	LastModified time.Time
	// Now is the time the report was read, on AgeClock; Age is Now less
	// LastModified.
	Now      time.Time
	AgeClock string
	Age      time.Duration
	Marks
}

// Name is the device as store/device.
func (d Device) Name() string { return d.Store + "/" + d.Device }

// Marks are what a manager must notice about a device.
type Marks struct {
	// Offline: its report is older than OfflineAfter, and its hours say it
	// should be recording now (or it has none).
	Offline bool
	// Closed: silent as long, but outside its recording hours: it is
	// expected to be off.
	Closed bool
	// NotRecording: its report is fresh, and it is in a fault, or idle or
	// held off by its rules while its hours say it should record.
	NotRecording bool
	// ClockOff: the report's Sent differs from the server's
	// Last-Modified by more than ClockSkew; ClockOffBy is Sent less
	// Last-Modified.
	ClockOff   bool
	ClockOffBy time.Duration
	// HoursErr says why the report's hours could not be read; the device
	// is then judged as if it had none (always recording).
	HoursErr error
}

// Bucket is the bucket the devices report to.
type Bucket struct {
	Client *minio.Core
	Bucket string
	Prefix string // storage.prefix: the stores are below it
}

// Scan finds every device under the prefix and reads and judges its report.
// An error is the listing's: a device whose report cannot be read is
// returned with Err set, never left out. The devices are sorted by store
// and device.
func (b Bucket) Scan(ctx context.Context, o Options) ([]Device, error) {
	o = o.withDefaults()
	stores, err := b.folders(ctx, b.Prefix)
	if err != nil {
		return nil, err
	}
	// The stores' folders are listed concurrently too: a chain has many.
	perStore := make([][]string, len(stores))
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.Concurrency)
	for i, s := range stores {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			perStore[i], errs[i] = b.folders(ctx, path.Join(b.Prefix, s))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var devices []Device
	for i, s := range stores {
		for _, d := range perStore[i] {
			devices = append(devices, Device{Store: s, Device: d, Key: health.Key(b.Prefix, s, d)})
		}
	}
	for i := range devices {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			b.read(ctx, &devices[i], o)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return devices, nil
}

// folders lists the stores or devices directly below dir ("" is the top).
func (b Bucket) folders(ctx context.Context, dir string) ([]string, error) {
	names, err := bucket.Folders(ctx, b.Client.Client, b.Bucket, dir)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return names, nil
}

// read fetches d's report and judges it.
func (b Bucket) read(ctx context.Context, d *Device, o Options) {
	body, info, h, err := b.Client.GetObject(ctx, b.Bucket, d.Key, minio.GetObjectOptions{})
	if err != nil {
		if bucket.IsNotFound(err) {
			d.Err = fmt.Errorf("%s: %w", d.Key, ErrNoReport)
		} else {
			d.Err = fmt.Errorf("%s: %w", d.Key, bucket.Classify(err))
		}
		return
	}
	defer body.Close()
	raw, err := io.ReadAll(io.LimitReader(body, health.MaxSize+1))
	if err != nil {
		d.Err = fmt.Errorf("%s: %w", d.Key, bucket.Classify(err))
		return
	}
	d.LastModified = info.LastModified
	d.Now, d.AgeClock = o.Now(), LocalClock
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		d.Now, d.AgeClock = t, ServerClock
	}
	// The Date has whole seconds, Last-Modified too: a report read in the
	// second it was written is not from the future.
	d.Age = max(d.Now.Sub(d.LastModified), 0)
	r, err := health.Parse(raw)
	if err != nil {
		d.Err = fmt.Errorf("%s: %w", d.Key, err)
	} else {
		d.Report = &r
	}
	d.Marks = Judge(d.Report, d.Age, d.LastModified, d.Now, o)
}

// Judge marks a device whose report r (nil when it could not be read) the
// server stored at lastModified and which is age old at now, the server's
// time. The recording hours are the report's, evaluated at now: a device
// silent since closing time is Closed, and Offline once its hours begin
// again without it.
func Judge(r *health.Report, age time.Duration, lastModified, now time.Time, o Options) Marks {
	o = o.withDefaults()
	var m Marks
	silent := age > o.OfflineAfter
	if r == nil {
		// Written, but unreadable: still the device's sign of life.
		m.Offline = silent
		return m
	}
	expected := true
	if s, err := schedule(r.Hours); err != nil {
		m.HoursErr = err
	} else {
		expected = s.Open(now)
	}
	switch {
	case silent && expected:
		m.Offline = true
	case silent:
		m.Closed = true
	default:
		idle := r.State == "idle" || r.Closed != ""
		m.NotRecording = r.State == "fault" || idle && (expected || r.RecordingExpected)
	}
	m.ClockOffBy = r.Sent.Sub(lastModified)
	m.ClockOff = m.ClockOffBy > o.ClockSkew || m.ClockOffBy < -o.ClockSkew
	return m
}

// schedule is the recording hours h describes.
func schedule(h health.Hours) (*config.Schedule, error) {
	loc, err := location(h.Zone)
	if err != nil {
		return nil, fmt.Errorf("timezone %q: %w", h.Zone, err)
	}
	s, err := config.ParseSchedule(h.Recording, h.Closed, loc)
	if err != nil {
		return nil, fmt.Errorf("recording hours: %w", err)
	}
	return s, nil
}

// Zone is the device's time zone as its report names it, or UTC.
func (d Device) Zone() *time.Location {
	if d.Report == nil {
		return time.UTC
	}
	loc, err := location(d.Report.Hours.Zone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// zones holds each zone location has loaded (a name to its
// *time.Location): a thousand reports name a few zones, and loading one
// reads the zone database. Only zones that exist are kept, so it is
// bounded by the database, whatever reports say.
var zones sync.Map

// location is time.LoadLocation, remembered.
func location(name string) (*time.Location, error) {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, loc)
	return loc, nil
}
