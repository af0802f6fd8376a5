package alert

import (
	"encoding/json"
	"errors"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var tokyo = time.FixedZone("JST", 9*3600)

var origin = Origin{Store: "shop-1", Device: "counter-1", Label: "カウンター1", Zone: tokyo, ConsoleURL: "https://console.example/"}

func TestLink(t *testing.T) {
	tests := []struct {
		console, store, device, id, want string
	}{
		{"https://c.example", "shop-1", "counter-1", "20261130-140205-000042", "https://c.example/incidents/shop-1/counter-1/20261130-140205-000042"},
		{"https://c.example/mamoru/", "s", "d", "i", "https://c.example/mamoru/incidents/s/d/i"},
		{"https://c.example", "渋谷 店", "a/b", "x?y#z", "https://c.example/incidents/%E6%B8%8B%E8%B0%B7%20%E5%BA%97/a%2Fb/x%3Fy%23z"},
		{"", "s", "d", "i", ""},
	}
	for _, tt := range tests {
		if got := Link(tt.console, tt.store, tt.device, tt.id); got != tt.want {
			t.Errorf("Link(%q, %q, %q, %q) = %q, want %q", tt.console, tt.store, tt.device, tt.id, got, tt.want)
		}
	}
}

func TestIncidentEvent(t *testing.T) {
	press := time.Date(2026, 11, 30, 5, 2, 5, 120e6, time.UTC)
	e := origin.IncidentEvent(IncidentStarted, press.Add(130*time.Millisecond), "20261130-140205-000042", press)
	id, err := uuid.Parse(e.ID)
	if err != nil || id.Version() != 4 || id.Variant() != uuid.RFC4122 {
		t.Errorf("ID = %q (%v), want a random (version 4) UUID", e.ID, err)
	}
	if other := origin.Event(DeviceFault, press); other.ID == e.ID {
		t.Error("two events have the same id")
	}
	if want := "shop-1/counter-1/20261130-140205-000042"; e.Incident != want {
		t.Errorf("Incident = %q, want %q", e.Incident, want)
	}
	if want := "https://console.example/incidents/shop-1/counter-1/20261130-140205-000042"; e.Link != want {
		t.Errorf("Link = %q, want %q", e.Link, want)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if got, want := fields["press_time"], "2026-11-30T14:02:05.12+09:00"; got != want {
		t.Errorf("press_time = %v, want %v (RFC 3339 in the device's zone)", got, want)
	}
	if got, want := fields["time"], "2026-11-30T14:02:05.25+09:00"; got != want {
		t.Errorf("time = %v, want %v", got, want)
	}
	for _, absent := range []string{"urgent", "late", "details", "source"} {
		if _, ok := fields[absent]; ok {
			t.Errorf("JSON has %q, want it omitted when empty: %s", absent, b)
		}
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(back); string(again) != string(b) {
		t.Errorf("JSON after a round trip:\n%s\nwant\n%s", again, b)
	}
	if err := back.check(); err != nil {
		t.Errorf("check() = %v on an event Origin made", err)
	}
}

func TestEventCheck(t *testing.T) {
	good := origin.Event(DeviceFault, time.Now())
	tests := []struct {
		name string
		edit func(*Event)
	}{
		{"no id", func(e *Event) { e.ID = "" }},
		{"id not a UUID", func(e *Event) { e.ID = "../../etc/passwd" }},
		{"id a UUID in another form", func(e *Event) { e.ID = "urn:uuid:" + e.ID }},
		{"unknown name", func(e *Event) { e.Name = "incident.exploded" }},
		{"no time", func(e *Event) { e.Time = time.Time{} }},
	}
	for _, tt := range tests {
		e := good
		tt.edit(&e)
		if err := e.check(); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: check() = %v, want ErrBadEvent", tt.name, err)
		}
	}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		patterns []string
		name     Name
		want     bool
	}{
		{nil, IncidentStarted, true},
		{nil, PressRefused, true},
		{nil, DeviceFault, true},
		{nil, DeviceRecovered, true},
		{nil, IncidentSaved, false},
		{nil, ClockUnsynced, false},
		{[]string{"incident.*"}, IncidentUploaded, true},
		{[]string{"incident.*"}, PressRefused, false},
		{[]string{"*"}, ClockUnsynced, true},
		{[]string{"spool.full", "upload.stuck"}, UploadStuck, true},
		{[]string{"spool.full", "upload.stuck"}, SpoolFull, true},
		{[]string{"spool.full", "upload.stuck"}, DeviceFault, false},
		{[]string{"*.started"}, IncidentStarted, true},
	}
	for _, tt := range tests {
		f, err := NewFilter(tt.patterns)
		if err != nil {
			t.Fatalf("NewFilter(%q): %v", tt.patterns, err)
		}
		if got := f.Match(tt.name); got != tt.want {
			t.Errorf("NewFilter(%q).Match(%s) = %v, want %v", tt.patterns, tt.name, got, tt.want)
		}
	}
	if (Filter{}).Match(IncidentStarted) {
		t.Error("the zero Filter matches, want nothing")
	}
}

func TestNewFilterRejects(t *testing.T) {
	_, err := NewFilter([]string{"incident.*", "incdent.*", "device", "[x"})
	if !errors.Is(err, ErrNoSuchEvent) || !errors.Is(err, path.ErrBadPattern) {
		t.Fatalf("NewFilter = %v, want ErrNoSuchEvent and ErrBadPattern", err)
	}
	for _, want := range []string{`"incdent.*"`, `"device"`, `"[x"`, "incident.started, incident.extended"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), `"incident.*" matches no event`) {
		t.Errorf("error %q rejects a good pattern", err)
	}
}

func TestRender(t *testing.T) {
	press := time.Date(2026, 11, 30, 14, 2, 5, 0, tokyo)
	e := origin.IncidentEvent(IncidentStarted, press, "20261130-140205-000042", press.UTC())
	e.Urgent = true
	e.Source = "button"
	tests := []struct {
		name      string
		e         Event
		lang      string
		wantTitle string
		wantBody  []string
	}{
		{"urgent press, ja", e, "", "【至急】カウンター1で通報ボタン 14:02",
			[]string{"店舗: shop-1", "事案: shop-1/counter-1/20261130-140205-000042", "通報: 2026-11-30 14:02:05", "操作元: button", e.Link}},
		{"urgent press, en", e, English, "URGENT: Panic button at カウンター1 14:02", []string{"Store: shop-1", "Pressed: 2026-11-30 14:02:05"}},
		{"press", func() Event { e := e; e.Urgent = false; return e }(), Japanese, "カウンター1で通報ボタン 14:02", nil},
		{"late", func() Event { e := e; e.Late = 312; return e }(), Japanese, "【至急】カウンター1で通報ボタン 14:02", []string{"この通知は5分遅れて届きました"}},
		{"late, en", func() Event { e := e; e.Late = 45; return e }(), English, "URGENT: Panic button at カウンター1 14:02", []string{"This alert arrived 45 s late"}},
		{"fault without a label", func() Event {
			e := Origin{Store: "s", Device: "counter-2", Zone: tokyo}.Event(DeviceFault, press.Add(time.Hour))
			e.Details = map[string]string{"reason": "indicator fault", "error": "read back low"}
			return e
		}(), Japanese, "counter-2の録画が止まっています 15:02", []string{"理由: indicator fault", "エラー: read back low"}},
		{"offline, from fleet watch", func() Event {
			e := origin.Event(DeviceOffline, press.Add(time.Hour))
			e.Details = map[string]string{"last_seen": press.Format(time.RFC3339), "reason": "no health report for 58m0s"}
			return e
		}(), Japanese, "カウンター1と連絡が取れません 15:02", []string{"最後の報告: 2026-11-30 14:02:05"}},
		{"refused outside hours, ja", func() Event {
			e := origin.Event(PressRefused, press)
			e.Details = map[string]string{"reason": "outside recording hours"}
			return e
		}(), Japanese, "カウンター1で通報ボタン、録画できず 14:02", []string{"理由: 記録時間外"}},
		{"refused outside hours, en", func() Event {
			e := origin.Event(PressRefused, press)
			e.Details = map[string]string{"reason": "outside recording hours"}
			return e
		}(), English, "Panic button at カウンター1, nothing recorded 14:02", []string{"Reason: outside recording hours"}},
		{"camera silent, ja", func() Event {
			e := origin.Event(DeviceFault, press)
			e.Details = map[string]string{"source": "video", "reason": "video has sent nothing for 30 s", "error": "rpicam-vid: no cameras available"}
			return e
		}(), Japanese, "カウンター1の録画が止まっています 14:02", []string{"理由: カメラ（映像）から30秒間何も届いていない", "エラー: rpicam-vid: no cameras available"}},
		{"raised voice, ja", func() Event {
			e := origin.Event(SoundRaised, press)
			e.Details = SoundDetails(18.24, -22.06, -40.3, 1100*time.Millisecond, "alert")
			return e
		}(), Japanese, "カウンター1で大きな声を検知 14:02", []string{"音量: この時間帯のふだんの声より+18.2 dB（-22.1 LUFS、ふだんは-40.3 LUFS）が1.1秒続いた"}},
		{"raised voice, en", func() Event {
			e := origin.Event(SoundRaised, press)
			e.Details = SoundDetails(18.24, -22.06, -40.3, 1100*time.Millisecond, "alert")
			return e
		}(), English, "Raised voice heard at カウンター1 14:02", []string{"Loudness: +18.2 dB over the usual voices for this hour (-22.1 LUFS, usually -40.3 LUFS) for 1.1 s"}},
		{"incident a raised voice raised, ja", func() Event { e := e; e.Urgent, e.Source = false, SoundSource; return e }(), Japanese,
			"カウンター1で大きな声、記録を保存します 14:02", []string{"操作元: 大きな声の検知（音量のみ）"}},
		{"incident a raised voice extended, en", func() Event {
			e := origin.IncidentEvent(IncidentExtended, press, "20261130-140205-000042", press)
			e.Source = SoundSource
			return e
		}(), English, "Raised voice again at カウンター1: recording extended 14:02", []string{"Source: raised voice detected (loudness only)"}},
	}
	for _, tt := range tests {
		m := Render(tt.e, tt.lang)
		if m.Title != tt.wantTitle {
			t.Errorf("%s: title = %q, want %q", tt.name, m.Title, tt.wantTitle)
		}
		for _, w := range tt.wantBody {
			if !strings.Contains(m.Body, w) {
				t.Errorf("%s: body %q lacks %q", tt.name, m.Body, w)
			}
		}
	}
	for _, lang := range []string{Japanese, English} {
		for _, n := range Names {
			if texts[lang].titles[n] == "" {
				t.Errorf("no %s title for %s", lang, n)
			}
			if tags[n] == "" {
				t.Errorf("no ntfy tags for %s", n)
			}
		}
	}
}

func TestPriority(t *testing.T) {
	tests := []struct {
		name   Name
		urgent bool
		want   int
	}{
		{IncidentStarted, true, 5},
		{PressRefused, true, 5},
		{IncidentStarted, false, 4},
		{PressRefused, false, 4},
		{DeviceFault, false, 4},
		{UploadStuck, false, 4},
		{SoundRaised, false, 4},
		{IncidentSaved, true, 3},
		{DeviceRecovered, false, 3},
		{ClockUnsynced, false, 3},
	}
	for _, tt := range tests {
		if got := priority(Event{Name: tt.name, Urgent: tt.urgent}); got != tt.want {
			t.Errorf("priority(%s, urgent %v) = %d, want %d", tt.name, tt.urgent, got, tt.want)
		}
	}
}

// TestEventJSONShape holds the JSON receivers parse to the package
// documentation's: a field renamed or gone breaks them.
func TestEventJSONShape(t *testing.T) {
	e := pressEvent()
	e.Late = 312
	e.Details = map[string]string{"reason": "spool full"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range fields {
		got = append(got, k)
	}
	slices.Sort(got)
	want := []string{"details", "device", "id", "incident", "label", "late", "link", "name", "press_time", "source", "store", "time", "urgent"}
	if !slices.Equal(got, want) {
		t.Errorf("JSON fields = %v, want %v", got, want)
	}
}
