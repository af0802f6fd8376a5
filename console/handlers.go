package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/capture"
	"mamoru/config"
	"mamoru/console/access"
	"mamoru/custody"
	"mamoru/outbox"
)

// Row is one incident as the inbox and its API show it.
type Row struct {
	Name       string        `json:"name"` // store/device/id
	Store      string        `json:"store"`
	Device     string        `json:"device"`
	ID         string        `json:"id"`
	Day        string        `json:"day"` // YYYY/MM/DD: its folder
	Time       string        `json:"time"`
	Pressed    time.Time     `json:"pressed,omitzero"`
	Seconds    float64       `json:"duration_seconds"`
	Urgent     bool          `json:"urgent"`
	Reviewed   bool          `json:"reviewed"`
	FalsePress bool          `json:"false_press"`
	Kept       bool          `json:"kept"`
	Notes      int           `json:"notes"`
	State      State         `json:"state"`
	StateText  string        `json:"state_text"`
	Link       string        `json:"link"`
	Unreadable string        `json:"unreadable,omitempty"` // why the manifest could not be read
	Check      *Verification `json:"verification,omitempty"`
}

// rows reads the manifests of items and makes their rows; an item not
// yet verified is set to be checked in the background.
func (s *Server) rows(ctx context.Context, t map[string]string, snap Snapshot, items []Item) []Row {
	es, errs := s.entries(ctx, items)
	out := make([]Row, len(items))
	for i, it := range items {
		rec := snap.Records[it.Name()]
		r := Row{Name: it.Name(), Store: it.Store, Device: it.Device, ID: it.ID, Day: it.Day,
			Reviewed: rec.Reviewed, FalsePress: rec.FalsePress, Kept: rec.Held, Notes: rec.Notes,
			Link: "/incidents/" + it.Name()}
		if errs[i] != nil {
			r.Unreadable = errs[i].Error()
		} else {
			m := es[i].Manifest
			r.Pressed, r.Time, r.Seconds, r.Urgent = m.PressTime, s.when(m.PressTime), m.DurationSeconds, m.Urgent
		}
		if r.Time == "" {
			r.Time = idTime(it.ID)
		}
		v, ok := s.verifier.known(it)
		if !ok {
			v.State = Checking
			s.checkLater(it)
		}
		r.State, r.StateText = v.State, stateText(t, v.State)
		out[i] = r
	}
	return out
}

// checkLater verifies it in the background, so that the inbox answers at
// once and shows the result when the page asks again.
func (s *Server) checkLater(it Item) {
	s.checks.Go(func() { s.verifier.check(s.ctx, it) })
}

// idTime is the press time an incident id starts with, for a row whose
// manifest cannot be read.
func idTime(id string) string {
	t, err := time.Parse("20060102-150405", id[:min(len(id), 15)])
	if err != nil {
		return id
	}
	return t.Format("2006-01-02 15:04:05")
}

// inboxPage is the inbox.
type inboxPage struct {
	frame
	Q            Query
	Stores       []StoreCount
	Devices      []string
	Rows         []Row
	Total, Pages int
	Prev, Next   string
	Checking     bool
	Unreviewed   int
}

func (s *Server) inbox(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, err)
		return
	}
	snap, err := s.index.Get(r.Context())
	if err != nil {
		s.problem(w, r, http.StatusBadGateway, err)
		return
	}
	f := s.frame(w, r)
	f.Title = f.T["inbox_title"]
	p := inboxPage{frame: f, Q: q, Stores: counts(snap)}
	for _, c := range p.Stores {
		p.Unreviewed += c.Unreviewed
	}
	seen := map[string]bool{}
	for _, it := range snap.Items {
		if (q.Store == "" || it.Store == q.Store) && !seen[it.Store+"/"+it.Device] {
			seen[it.Store+"/"+it.Device] = true
			p.Devices = append(p.Devices, it.Device)
		}
	}
	items := q.filter(snap)
	p.Total = len(items)
	p.Pages = max(1, (len(items)+s.o.PageSize-1)/s.o.PageSize)
	from := min(len(items), (q.Page-1)*s.o.PageSize)
	to := min(len(items), from+s.o.PageSize)
	p.Rows = s.rows(r.Context(), f.T, snap, items[from:to])
	for _, row := range p.Rows {
		p.Checking = p.Checking || row.State == Checking
	}
	page := func(n int) string {
		v := r.URL.Query()
		v.Set("page", strconv.Itoa(n))
		return "/?" + v.Encode()
	}
	if q.Page > 1 {
		p.Prev = page(q.Page - 1)
	}
	if q.Page < p.Pages {
		p.Next = page(q.Page + 1)
	}
	s.render(w, http.StatusOK, "inbox", p)
}

// incidentPage is one incident.
type incidentPage struct {
	frame
	Row
	M          outbox.Manifest
	V          Verification
	Says       string
	Presses    []pressMark
	Still      float64 // seconds into the clip
	Held       bool
	HoldErr    string
	NoLock     bool
	Trail      []trailRow
	Copies     []string
	Here       string // "?day=YYYY/MM/DD" when Copies is not empty, else ""
	Notes      []trailRow
	Share      string // a link just made
	ShareUntil string
	Can        map[string]bool
	Tracks     []string
	ClipFrom   string
	ClipTo     string
	Media      string
	// Trigger is the manifest's in words; Sounds say each raised voice
	// the device pressed for.
	Trigger string
	Sounds  []string
}

type pressMark struct {
	At     float64 // seconds into the clip
	Time   string
	Source string
}

type trailRow struct {
	When, Who, From, What, Detail string
	Problem                       string
}

func (s *Server) incident(w http.ResponseWriter, r *http.Request) {
	s.showIncident(w, r, "", time.Time{})
}

// showIncident renders the incident page; share is a link just made.
func (s *Server) showIncident(w http.ResponseWriter, r *http.Request, share string, until time.Time) {
	ctx := r.Context()
	it, copies, err := s.find(ctx, r)
	if err != nil {
		s.problem(w, r, statusOf(err), err)
		return
	}
	e, err := s.entry(ctx, it)
	if err != nil {
		s.problem(w, r, statusOf(err), err)
		return
	}
	if err := s.record(ctx, r, it, custody.View, ""); err != nil {
		s.problem(w, r, http.StatusBadGateway, err)
		return
	}
	f := s.frame(w, r)
	m := e.Manifest
	snap, _ := s.index.Get(ctx)
	rows := s.rows(ctx, f.T, snap, []Item{it})
	p := incidentPage{frame: f, Row: rows[0], M: m, Copies: copies, Share: share}
	p.Title = f.T["inc_title"] + " " + it.Name()
	if !until.IsZero() {
		p.ShareUntil = s.when(until)
	}
	p.V = s.verifier.check(ctx, it)
	p.State, p.StateText = p.V.State, stateText(f.T, p.V.State)
	p.Says = says(f.T, p.V)
	p.Trigger = m.Trigger
	if m.Trigger == config.SoundSource {
		p.Trigger = f.T["inc_trigger_sound"]
	}
	for _, pr := range m.Presses {
		p.Presses = append(p.Presses, pressMark{At: pr.Time.Sub(m.ClipStart).Seconds(), Time: s.when(pr.Time), Source: pr.Source})
		if sd := pr.Sound; sd != nil {
			learned := f.T["inc_sound_learned"]
			if !sd.Learned {
				learned = f.T["inc_sound_default"]
			}
			p.Sounds = append(p.Sounds, fmt.Sprintf(f.T["inc_sound_text"], s.when(sd.Start), sd.AboveDB, sd.PeakLUFS, sd.BaselineLUFS, learned, sd.Seconds, sd.RaiseDB))
		}
	}
	p.Still = max(0, m.PressTime.Sub(m.ClipStart).Seconds())
	for _, t := range m.Tracks {
		switch t.Kind {
		case "video":
			// Devices do not write the picture's size in the manifest
			// (it is omitted when 0): say it only when known.
			size := ""
			if t.Width > 0 && t.Height > 0 {
				size = fmt.Sprintf(" %dx%d", t.Width, t.Height)
			}
			p.Tracks = append(p.Tracks, fmt.Sprintf("%s %s%s, %d frames", t.Kind, t.Codec, size, t.Frames))
		default:
			p.Tracks = append(p.Tracks, fmt.Sprintf("%s %s %d Hz %d ch", t.Kind, t.Codec, t.SampleRate, t.Channels))
		}
	}
	p.ClipFrom, p.ClipTo = s.when(m.ClipStart), s.when(m.ClipEnd)
	p.Media = "/media/" + it.Name() + "/clip.mp4"
	if len(copies) > 0 {
		// Several incidents have this name: every link and form of the
		// page names the one it shows.
		p.Here = "?day=" + url.QueryEscape(it.Day)
		p.Media += p.Here
	}
	held, err := s.o.Clips.Held(ctx, e)
	switch {
	case errors.Is(err, bucket.ErrNoObjectLock):
		p.NoLock, p.HoldErr = true, err.Error()
	case err != nil:
		p.HoldErr = err.Error()
	}
	p.Held = held
	trail, err := s.custody.List(ctx, it.Store, it.Device, it.ID)
	if err != nil {
		s.problem(w, r, http.StatusBadGateway, err)
		return
	}
	for _, ev := range trail {
		row := trailRow{When: s.when(ev.Stored), Who: ev.Actor, From: ev.From, What: f.T["act_"+string(ev.Action)], Detail: ev.Detail, Problem: ev.Problem}
		if row.What == "" {
			row.What = string(ev.Action)
		}
		p.Trail = append(p.Trail, row)
		if ev.Action == custody.Note && ev.Problem == "" {
			p.Notes = append(p.Notes, row)
		}
	}
	u, _ := access.UserOf(r)
	p.Can = map[string]bool{
		"review": u.Can(access.Review), "hold": u.Can(access.Hold), "share": u.Can(access.Share),
		"handover": u.Can(access.Handover), "delete": u.Can(access.Delete),
	}
	s.render(w, http.StatusOK, "incident", p)
}

// says is a verification in one line a manager understands.
func says(t map[string]string, v Verification) string {
	switch v.State {
	case Verified, Legacy:
		signer := strings.TrimPrefix(v.Signature, bucket.VerdictVerified+": signed by ")
		if v.State == Legacy {
			signer = v.Place
			if parts := strings.Split(v.Place, "/"); len(parts) > 2 {
				signer = parts[0] + "/" + parts[1]
			}
		}
		return fmt.Sprintf(t["says_"+string(v.State)], signer)
	case Failed:
		return t["says_failed"] + v.Error
	}
	return t["says_"+string(v.State)]
}

// statusOf is the HTTP status of an error finding or reading an incident.
func statusOf(err error) int {
	switch {
	case errors.Is(err, bucket.ErrNoIncident), bucket.IsNotFound(err):
		return http.StatusNotFound
	case errors.Is(err, bucket.ErrBadRef), errors.Is(err, bucket.ErrBadID), errors.Is(err, ErrBadQuery):
		return http.StatusBadRequest
	}
	return http.StatusBadGateway
}

// media serves the clip from the bucket, with Range requests, so that the
// browser's player seeks without downloading it whole.
func (s *Server) media(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	it, _, err := s.find(ctx, r)
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	o, err := s.o.Clips.Client.GetObject(ctx, s.o.Clips.Bucket, path.Join(it.Dir, outbox.ClipFile), minio.GetObjectOptions{})
	if err != nil {
		http.Error(w, bucket.Classify(err).Error(), http.StatusBadGateway)
		return
	}
	defer o.Close()
	st, err := o.Stat()
	if err != nil {
		http.Error(w, bucket.Classify(err).Error(), statusOf(err))
		return
	}
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	http.ServeContent(w, r, it.ID+".mp4", st.LastModified, o)
}

// viewingCopy downloads the incident's viewing copy (capture.ViewingCopy:
// the clip with its sound as ALAC, which Windows' and Apple's own players
// decode), made from the clip in the bucket, and records the download.
func (s *Server) viewingCopy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	it, _, err := s.find(ctx, r)
	if err != nil {
		s.problem(w, r, statusOf(err), err)
		return
	}
	o, err := s.o.Clips.Client.GetObject(ctx, s.o.Clips.Bucket, path.Join(it.Dir, outbox.ClipFile), minio.GetObjectOptions{})
	if err != nil {
		s.problem(w, r, http.StatusBadGateway, bucket.Classify(err))
		return
	}
	defer o.Close()
	st, err := o.Stat()
	if err != nil {
		s.problem(w, r, statusOf(err), bucket.Classify(err))
		return
	}
	f, err := os.CreateTemp("", "mamoru-viewing-copy-*.mp4")
	if err != nil {
		s.problem(w, r, http.StatusInternalServerError, err)
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := capture.ViewingCopy(f, o, st.Size); err != nil {
		s.problem(w, r, http.StatusUnprocessableEntity, fmt.Errorf("%s: %w", path.Join(it.Dir, outbox.ClipFile), err))
		return
	}
	if err := s.record(ctx, r, it, custody.Download, "viewing copy "+it.ID+"-viewing-copy.mp4"); err != nil {
		s.problem(w, r, http.StatusBadGateway, err)
		return
	}
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", it.ID+"-viewing-copy.mp4"))
	http.ServeContent(w, r, it.ID+"-viewing-copy.mp4", st.LastModified, f)
}

// open finds the incident a request's path names and reads its manifest,
// or shows the problem and returns false.
func (s *Server) open(w http.ResponseWriter, r *http.Request) (Item, bucket.Entry, bool) {
	it, _, err := s.find(r.Context(), r)
	if err != nil {
		s.problem(w, r, statusOf(err), err)
		return it, bucket.Entry{}, false
	}
	e, err := s.entry(r.Context(), it)
	if err != nil {
		s.problem(w, r, statusOf(err), err)
		return it, e, false
	}
	return it, e, true
}

// back redirects to the incident's page after a change, saying what was
// done.
func back(w http.ResponseWriter, r *http.Request, it Item, done string) {
	v := url.Values{"done": {done}}
	if day := r.URL.Query().Get("day"); day != "" {
		v.Set("day", day)
	}
	http.Redirect(w, r, "/incidents/"+it.Name()+"?"+v.Encode(), http.StatusSeeOther)
}

// maxNote bounds a note or a reason, as custody bounds a record's detail.
const maxNote = 2000

// formText reads a free-text field: trimmed, valid UTF-8, bounded.
func formText(r *http.Request, name string) (string, error) {
	v := strings.TrimSpace(r.PostFormValue(name))
	if !utf8.ValidString(v) || len(v) > maxNote {
		return "", fmt.Errorf("%w: %s must be text of at most %d bytes", ErrBadQuery, name, maxNote)
	}
	return v, nil
}

func (s *Server) review(w http.ResponseWriter, r *http.Request) {
	it, _, err := s.find(r.Context(), r)
	if err != nil {
		s.problem(w, r, statusOf(err), err)
		return
	}
	note, err := formText(r, "note")
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, err)
		return
	}
	var action custody.Action
	var done string
	switch r.PostFormValue("mark") {
	case "reviewed":
		action, done = custody.Review, "reviewed"
	case "false":
		action, done = custody.FalsePress, "false"
	case "note":
		if note == "" {
			s.problem(w, r, http.StatusBadRequest, fmt.Errorf("%w: the note is empty", ErrBadQuery))
			return
		}
		action, done = custody.Note, "note"
	default:
		s.problem(w, r, http.StatusBadRequest, fmt.Errorf("%w: mark=%q is not reviewed, false or note", ErrBadQuery, r.PostFormValue("mark")))
		return
	}
	if err := s.record(r.Context(), r, it, action, note); err != nil {
		s.problem(w, r, http.StatusBadGateway, err)
		return
	}
	s.index.forgetRecords()
	back(w, r, it, done)
}

func (s *Server) hold(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	it, e, ok := s.open(w, r)
	if !ok {
		return
	}
	on := r.PostFormValue("hold") == "on"
	if r.PostFormValue("hold") != "on" && r.PostFormValue("hold") != "off" {
		s.problem(w, r, http.StatusBadRequest, fmt.Errorf("%w: hold=%q is not on or off", ErrBadQuery, r.PostFormValue("hold")))
		return
	}
	if err := s.o.Clips.SetHold(ctx, e, on); err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, bucket.ErrNoObjectLock) {
			status = http.StatusConflict
		}
		s.problem(w, r, status, err)
		return
	}
	action, done := custody.Hold, "held"
	if !on {
		action, done = custody.Release, "released"
	}
	if err := s.record(ctx, r, it, action, ""); err != nil {
		s.problem(w, r, http.StatusBadGateway, err)
		return
	}
	s.index.forgetRecords()
	back(w, r, it, done)
}

// Share links: 24 hours unless the manager chooses, at most S3's 7 days.
const (
	DefaultShare = 24 * time.Hour
	MaxShare     = 7 * 24 * time.Hour
)

func (s *Server) share(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	it, e, ok := s.open(w, r)
	if !ok {
		return
	}
	d := DefaultShare
	if h := r.PostFormValue("hours"); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 1 || time.Duration(n)*time.Hour > MaxShare {
			s.problem(w, r, http.StatusBadRequest, fmt.Errorf("%w: hours=%q must be 1 to %d", ErrBadQuery, h, int(MaxShare.Hours())))
			return
		}
		d = time.Duration(n) * time.Hour
	}
	u, err := s.o.Clips.Share(ctx, e, d)
	if err != nil {
		s.problem(w, r, http.StatusBadGateway, err)
		return
	}
	until := s.o.Now().Add(d)
	if err := s.record(ctx, r, it, custody.Share, "link valid until "+until.In(s.o.Zone).Format(time.RFC3339)); err != nil {
		s.problem(w, r, http.StatusBadGateway, err)
		return
	}
	s.showIncident(w, r, u.String(), until)
}

func (s *Server) handover(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_, e, ok := s.open(w, r)
	if !ok {
		return
	}
	if s.o.Handover == nil {
		s.problem(w, r, http.StatusNotImplemented, errors.New("this console cannot make hand-over packages"))
		return
	}
	dir, err := os.MkdirTemp("", "mamoru-handover-")
	if err != nil {
		s.problem(w, r, http.StatusInternalServerError, err)
		return
	}
	defer os.RemoveAll(dir)
	who, from := actor(r)
	zip, err := s.o.Handover(ctx, e, who, from, dir)
	if err != nil {
		s.problem(w, r, http.StatusBadGateway, err)
		return
	}
	f, err := os.Open(zip)
	if err != nil {
		s.problem(w, r, http.StatusInternalServerError, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.problem(w, r, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", filepath.Base(zip)))
	http.ServeContent(w, r, filepath.Base(zip), fi.ModTime(), f)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	it, e, ok := s.open(w, r)
	if !ok {
		return
	}
	reason, err := formText(r, "reason")
	if err == nil && reason == "" {
		err = fmt.Errorf("%w: a deletion needs a reason (a person's request, a false press), which the chain of custody keeps", ErrBadQuery)
	}
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, err)
		return
	}
	if err := s.o.Clips.Delete(ctx, e); err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, bucket.ErrHeld) {
			status = http.StatusConflict
		}
		s.problem(w, r, status, err)
		return
	}
	if err := s.record(ctx, r, it, custody.Delete, reason); err != nil {
		s.problem(w, r, http.StatusBadGateway, fmt.Errorf("the incident was deleted, but its deletion could not be recorded: %w", err))
		return
	}
	s.index.forget()
	http.Redirect(w, r, "/?done=deleted", http.StatusSeeOther)
}

// devicesPage is the fleet.
type devicesPage struct {
	frame
	Devices []deviceRow
	Problem string
}

// deviceRow is one device as the devices page and its API show it.
type deviceRow struct {
	Name         string    `json:"name"`
	Label        string    `json:"label,omitempty"`
	Seen         time.Time `json:"last_seen,omitzero"`
	SeenText     string    `json:"-"`
	Ago          string    `json:"age"`
	State        string    `json:"state,omitempty"`
	Pending      int       `json:"pending_uploads"`
	ClockSynced  bool      `json:"clock_synced"`
	ClockOffBy   string    `json:"clock_off_by,omitempty"`
	Version      string    `json:"version,omitempty"`
	Offline      bool      `json:"offline"`
	Closed       bool      `json:"closed"`
	NotRecording bool      `json:"not_recording"`
	ClockOff     bool      `json:"clock_off"`
	Fault        string    `json:"fault,omitempty"`
	Error        string    `json:"error,omitempty"`
}

func (s *Server) deviceRows(ctx context.Context) ([]deviceRow, error) {
	ds, err := s.fleet(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]deviceRow, 0, len(ds))
	for _, d := range ds {
		row := deviceRow{Name: d.Name(), Seen: d.LastModified, SeenText: s.when(d.LastModified), Ago: d.Age.Round(time.Second).String(),
			Offline: d.Offline, Closed: d.Closed, NotRecording: d.NotRecording, ClockOff: d.ClockOff}
		if d.ClockOff {
			row.ClockOffBy = d.ClockOffBy.Round(time.Second).String()
		}
		if d.Err != nil {
			row.Error = d.Err.Error()
		}
		if rep := d.Report; rep != nil {
			row.Label, row.State, row.Pending, row.ClockSynced, row.Version, row.Fault = rep.Label, rep.State, rep.PendingUploads, rep.ClockSynced, rep.Software, rep.Fault
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request) {
	f := s.frame(w, r)
	f.Title = f.T["dev_title"]
	p := devicesPage{frame: f}
	rows, err := s.deviceRows(r.Context())
	if err != nil {
		p.Problem = err.Error()
	}
	p.Devices = rows
	s.render(w, http.StatusOK, "devices", p)
}
