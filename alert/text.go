package alert

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Languages of the human-readable text: Japanese, the default, and English.
const (
	Japanese = "ja"
	English  = "en"
)

// CheckLanguage reports whether lang is "" (Japanese), "ja" or "en".
func CheckLanguage(lang string) error {
	if lang != "" && lang != Japanese && lang != English {
		return fmt.Errorf("alert: language %q: want %q or %q", lang, Japanese, English)
	}
	return nil
}

// Message is an event as a person reads it: a title short enough for a
// phone's lock screen, and a body.
type Message struct {
	Title, Body string
}

// text is every sentence an alert says in one language. Each title format
// takes the place (the label) and the time (15:04).
type text struct {
	titles                                          map[Name]string
	urgent                                          string
	store, device, incident, at, press, source, why string
	err, late, lastSeen                             string
	seconds, minutes, hours                         string
	// reasons are the words for the reasons the recorder gives in
	// Details["reason"], which stay as they are in the event's JSON for
	// machines; sources the capture sources' names, and silent the
	// recorder's "<source> has sent nothing for 30 s" with one of them.
	reasons, sources map[string]string
	silent           string
	// soundStarted and soundExtended are incident.started's and
	// incident.extended's titles when a raised voice, not a person, raised
	// or extended it; soundSource names that source; loudness says how
	// loud it was (above_db, peak_lufs, baseline_lufs, seconds).
	soundStarted, soundExtended, soundSource, loudnessLabel, loudness string
}

// texts are the texts, by language.
var texts = map[string]text{
	Japanese: {
		titles: map[Name]string{
			IncidentStarted:  "%sで通報ボタン %s",
			IncidentExtended: "%sで再度通報ボタン %s",
			IncidentSaved:    "%sの録画を保存しました %s",
			IncidentUploaded: "%sの録画をアップロードしました %s",
			PressRefused:     "%sで通報ボタン、録画できず %s",
			DeviceFault:      "%sの録画が止まっています %s",
			DeviceRecovered:  "%sの録画が再開しました %s",
			SpoolFull:        "%sの保存領域がいっぱいです %s",
			UploadStuck:      "%sのアップロードが止まっています %s",
			ClockUnsynced:    "%sの時計が合っていません %s",
			SoundRaised:      "%sで大きな声を検知 %s",
			DeviceOffline:    "%sと連絡が取れません %s",
			DeviceOnline:     "%sと再び連絡が取れました %s",
			AlertTest:        "%sからのテスト通知 %s",
		},
		urgent: "【至急】",
		store:  "店舗", device: "機器", incident: "事案", at: "時刻", press: "通報", source: "操作元", why: "理由",
		err: "エラー", late: "この通知は%s遅れて届きました", lastSeen: "最後の報告",
		seconds: "%d秒", minutes: "%d分", hours: "%d時間",
		reasons: map[string]string{
			"spool full":              "送信前の記録で保存領域がいっぱい",
			"outside recording hours": "記録時間外",
			"fault":                   "故障のため記録できない",
			"not recording":           "記録していない",
		},
		sources:      map[string]string{"video": "カメラ（映像）", "audio": "マイク（音声）"},
		silent:       "%sから30秒間何も届いていない",
		soundStarted: "%sで大きな声、記録を保存します %s", soundExtended: "%sで再び大きな声、記録を延長します %s", soundSource: "大きな声の検知（音量のみ）",
		loudnessLabel: "音量", loudness: "この時間帯のふだんの声より%+.1f dB（%.1f LUFS、ふだんは%.1f LUFS）が%.1f秒続いた",
	},
	English: {
		titles: map[Name]string{
			IncidentStarted:  "Panic button at %s %s",
			IncidentExtended: "Panic button again at %s %s",
			IncidentSaved:    "Recording saved at %s %s",
			IncidentUploaded: "Recording uploaded from %s %s",
			PressRefused:     "Panic button at %s, nothing recorded %s",
			DeviceFault:      "%s has stopped recording %s",
			DeviceRecovered:  "%s records again %s",
			SpoolFull:        "%s: storage full %s",
			UploadStuck:      "%s: uploads stuck %s",
			ClockUnsynced:    "%s: clock not set %s",
			SoundRaised:      "Raised voice heard at %s %s",
			DeviceOffline:    "%s is not heard from %s",
			DeviceOnline:     "%s is heard from again %s",
			AlertTest:        "Test alert from %s %s",
		},
		urgent: "URGENT: ",
		store:  "Store", device: "Device", incident: "Incident", at: "Time", press: "Pressed", source: "Source", why: "Reason",
		err: "Error", late: "This alert arrived %s late", lastSeen: "Last report",
		seconds: "%d s", minutes: "%d min", hours: "%d h",
		silent:       "%s has sent nothing for 30 s",
		soundStarted: "Raised voice at %s: recording kept %s", soundExtended: "Raised voice again at %s: recording extended %s", soundSource: "raised voice detected (loudness only)",
		loudnessLabel: "Loudness", loudness: "%+.1f dB over the usual voices for this hour (%.1f LUFS, usually %.1f LUFS) for %.1f s",
	},
}

// SilentReason is the reason, in a device.fault's JSON, of a capture
// source (video, audio) that has sent nothing for 30 s.
func SilentReason(source string) string { return fmt.Sprintf(texts[English].silent, source) }

// reason is details' reason in t's language: a source gone silent and
// the press refusals in its words, anything else as it is.
func (t text) reason(details map[string]string) string {
	r := details["reason"]
	if src := details["source"]; src != "" && r == SilentReason(src) {
		return fmt.Sprintf(t.silent, cmp.Or(t.sources[src], src))
	}
	return cmp.Or(t.reasons[r], r)
}

// urgentNames are the events about a press: a long press makes them urgent.
var urgentNames = []Name{IncidentStarted, IncidentExtended, PressRefused}

// Render returns e as a person reads it, in lang ("" is Japanese): e.g.
// "【至急】カウンター1で通報ボタン 14:02" for an urgent press. Times are
// in the zone e's times carry, the device's.
func Render(e Event, lang string) Message {
	t, ok := texts[lang]
	if !ok {
		t = texts[Japanese]
	}
	place := e.Label
	if place == "" {
		place = e.Device
	}
	when := e.Time
	if !e.PressTime.IsZero() {
		when = e.PressTime
	}
	format := t.titles[e.Name]
	switch {
	case e.Name == IncidentStarted && e.Source == SoundSource:
		format = t.soundStarted
	case e.Name == IncidentExtended && e.Source == SoundSource:
		format = t.soundExtended
	}
	title := fmt.Sprintf(format, place, when.Format("15:04"))
	if e.Urgent && slices.Contains(urgentNames, e.Name) {
		title = t.urgent + title
	}

	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	line(t.store, e.Store)
	line(t.device, e.Device)
	line(t.incident, e.Incident)
	if !e.PressTime.IsZero() {
		line(t.press, e.PressTime.Format(time.DateTime))
	}
	line(t.at, e.Time.Format(time.DateTime))
	source := e.Source
	if source == SoundSource {
		source = t.soundSource
	}
	line(t.source, source)
	if l, ok := loudnessOf(e.Details); ok {
		line(t.loudnessLabel, fmt.Sprintf(t.loudness, l.above, l.peak, l.baseline, l.seconds))
	}
	if seen, err := time.Parse(time.RFC3339, e.Details["last_seen"]); err == nil {
		line(t.lastSeen, seen.Format(time.DateTime))
	}
	line(t.why, t.reason(e.Details))
	line(t.err, e.Details["error"])
	if e.Late > 0 {
		fmt.Fprintf(&b, t.late+"\n", duration(t.seconds, t.minutes, t.hours, e.Late))
	}
	if e.Link != "" {
		b.WriteString(e.Link + "\n")
	}
	return Message{Title: title, Body: strings.TrimSuffix(b.String(), "\n")}
}

// duration says seconds in the unit a person would use.
func duration(inSeconds, inMinutes, inHours string, s int) string {
	switch {
	case s < 120:
		return fmt.Sprintf(inSeconds, s)
	case s < 2*3600:
		return fmt.Sprintf(inMinutes, s/60)
	}
	return fmt.Sprintf(inHours, s/3600)
}

// priority is an event's ntfy priority: 5 for an urgent press, 4 for any
// other press and for what stops recording, 3 for the rest.
func priority(e Event) int {
	switch {
	case e.Urgent && slices.Contains(urgentNames, e.Name):
		return 5
	case slices.Contains(urgentNames, e.Name), e.Name == SoundRaised, e.Name == DeviceFault, e.Name == SpoolFull, e.Name == UploadStuck:
		return 4
	}
	return 3
}

// tags are an event's ntfy tags, which its app shows as emoji.
var tags = map[Name]string{
	IncidentStarted:  "rotating_light",
	IncidentExtended: "rotating_light",
	IncidentSaved:    "floppy_disk",
	IncidentUploaded: "white_check_mark",
	PressRefused:     "rotating_light,warning",
	DeviceFault:      "warning",
	DeviceRecovered:  "white_check_mark",
	SpoolFull:        "warning",
	UploadStuck:      "warning",
	ClockUnsynced:    "clock1",
	SoundRaised:      "loud_sound",
	DeviceOffline:    "warning",
	DeviceOnline:     "white_check_mark",
	AlertTest:        "white_check_mark",
}

// SoundSource is the source of an incident a raised voice raised, not a
// person (the recorder's [listen] action "incident").
const SoundSource = "sound"

// SoundDetails are a sound.raised event's details: how far above the
// usual level (dB), the level and the usual level (LUFS), how long it had
// lasted when it was confirmed, and what the recorder does about it
// ("alert" or "incident").
func SoundDetails(aboveDB, peakLUFS, baselineLUFS float64, lasted time.Duration, action string) map[string]string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }
	return map[string]string{"above_db": f(aboveDB), "peak_lufs": f(peakLUFS), "baseline_lufs": f(baselineLUFS),
		"seconds": f(lasted.Seconds()), "action": action}
}

// loudness is SoundDetails read back.
type loudness struct{ above, peak, baseline, seconds float64 }

func loudnessOf(details map[string]string) (loudness, bool) {
	var l loudness
	for _, f := range []struct {
		key string
		to  *float64
	}{{"above_db", &l.above}, {"peak_lufs", &l.peak}, {"baseline_lufs", &l.baseline}, {"seconds", &l.seconds}} {
		x, err := strconv.ParseFloat(details[f.key], 64)
		if err != nil {
			return loudness{}, false
		}
		*f.to = x
	}
	return l, true
}
