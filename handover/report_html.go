package handover

import (
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"io"
	"time"

	"mamoru/outbox"
)

//go:embed templates
var templates embed.FS

// page is report.html's template, parsed once: the stylesheet is inlined
// so that the file stands alone, with no resource fetched when it opens.
var page = func() *template.Template {
	t := template.Must(template.New("").ParseFS(templates, "templates/report.html"))
	css, err := templates.ReadFile("templates/report.css")
	if err != nil {
		panic(err)
	}
	return template.Must(t.New("style").Parse(string(css)))
}()

// WriteReport writes report.html for r to w: one self-contained HTML file
// (inline style, no script, no font or image fetched) for A4 portrait, each
// section in Japanese and then English. Every device time is shown in
// r.Zone, named; the bucket's times also in UTC. The same Report always
// gives the same bytes.
//
// A report whose Key has no fingerprint is of an unsigned clip: no key
// verified a signature, and its first line says UNSIGNED. One with a
// failed check says so above everything else.
func WriteReport(w io.Writer, r Report) error {
	if err := page.ExecuteTemplate(w, "report.html", newView(r)); err != nil {
		return fmt.Errorf("handover: write report: %w", err)
	}
	return nil
}

// view is a Report as the template shows it: times formatted in the zone,
// the indicator's log as spans, each derived file with its source's hash.
// Its fields named as Report's (Made, Files, Objects, Custody) replace
// them in the template; the rest of the Report is read as it is.
type view struct {
	Report
	Zone       string // the zone's name and offset, e.g. "Asia/Tokyo (JST, UTC+09:00)"
	Unsigned   bool
	Failed     int // checks that failed
	Made       string
	PressTime  string
	ClipStart  string
	ClipEnd    string
	Duration   string
	Presses    []pressRow
	Indicator  []indicatorRow
	Tracks     []trackRow
	Files      []fileRow
	Objects    []objectRow
	Custody    []custodyRow
	Derived    bool // a file in the package is derived from another
	PreRollMS  string
	AuditHead  string
	ClipSHA256 string
}

type pressRow struct {
	N            int
	Time, Source string
}

type indicatorRow struct {
	From, Until string
	On          bool
}

type trackRow struct {
	Kind, Codec, Format, Frames, Start, Duration string
}

type fileRow struct {
	File
	// FromSHA256 is the hash of the file this one is derived from, when
	// that file is in the package.
	FromSHA256 string
}

type objectRow struct {
	Object
	UTC, Local string
}

type custodyRow struct {
	CustodyEvent
	Time string
}

func newView(r Report) view {
	loc := cmp.Or(r.Zone, time.UTC)
	m := r.Manifest
	v := view{Report: r, Unsigned: r.Key.Fingerprint == ""}
	at := func(t time.Time) string {
		if t.IsZero() {
			return "不明 / unknown"
		}
		return t.In(loc).Format("2006-01-02 15:04:05.000 MST")
	}
	name, _ := time.Date(2000, 1, 1, 0, 0, 0, 0, loc).Zone()
	offset := ""
	if !m.PressTime.IsZero() {
		name, _ = m.PressTime.In(loc).Zone()
		offset = m.PressTime.In(loc).Format(", UTC-07:00")
	}
	v.Zone = fmt.Sprintf("%s (%s%s)", loc, name, offset)
	if r.Zone == nil {
		v.Zone += " — 機器の時間帯が不明のため UTC / the device's zone is unknown: UTC"
	}
	for _, c := range r.Checks {
		if !c.Passed {
			v.Failed++
		}
	}
	v.Made = at(r.Made)
	v.PressTime = at(m.PressTime)
	v.ClipStart = at(m.ClipStart)
	v.ClipEnd = at(m.ClipEnd)
	v.Duration = seconds(m.DurationSeconds)
	if m.PreRollSyncedMS != 0 {
		v.PreRollMS = fmt.Sprintf("%.1f ms", m.PreRollSyncedMS)
	}
	if m.AuditHead != nil {
		v.AuditHead = fmt.Sprintf("seq %d, %s", m.AuditHead.Seq, m.AuditHead.Hash)
	}
	for i, p := range m.Presses {
		v.Presses = append(v.Presses, pressRow{N: i + 1, Time: at(p.Time), Source: p.Source})
	}
	for i, l := range m.Indicator {
		until := v.ClipEnd
		if i+1 < len(m.Indicator) {
			until = at(m.Indicator[i+1].Time)
		}
		v.Indicator = append(v.Indicator, indicatorRow{From: at(l.Time), Until: until, On: l.On})
	}
	for _, t := range m.Tracks {
		v.Tracks = append(v.Tracks, track(t))
	}
	hashes := map[string]string{}
	for _, f := range r.Files {
		hashes[f.Name] = f.SHA256
	}
	for _, f := range r.Files {
		v.Files = append(v.Files, fileRow{File: f, FromSHA256: hashes[f.DerivedFrom]})
		v.Derived = v.Derived || f.DerivedFrom != ""
	}
	for _, o := range r.Objects {
		v.Objects = append(v.Objects, objectRow{Object: o,
			UTC: o.LastModified.UTC().Format("2006-01-02 15:04:05 UTC"), Local: at(o.LastModified)})
	}
	for _, e := range r.Custody {
		v.Custody = append(v.Custody, custodyRow{CustodyEvent: e, Time: at(e.Time)})
	}
	return v
}

func track(t outbox.Track) trackRow {
	row := trackRow{Kind: t.Kind, Codec: t.Codec, Frames: fmt.Sprint(t.Frames),
		Start: seconds(t.StartSeconds), Duration: seconds(t.DurationSeconds)}
	switch {
	case t.Width != 0 || t.Height != 0:
		row.Format = fmt.Sprintf("%d×%d", t.Width, t.Height)
	case t.SampleRate != 0:
		row.Format = fmt.Sprintf("%d Hz, %d ch", t.SampleRate, t.Channels)
		if t.Samples != 0 {
			row.Format += fmt.Sprintf(", %d samples", t.Samples)
		}
	}
	return row
}

func seconds(s float64) string { return fmt.Sprintf("%.3f s", s) }
