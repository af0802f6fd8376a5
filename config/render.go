package config

import (
	"bytes"
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

//go:embed templates
var templates embed.FS

// Rendered file names.
const (
	RulesFile  = "operating-rules.html"
	NoticeFile = "notice.html"
)

// Render writes the operating rules (運用ルール) and the store notice (店頭掲示)
// in lang ("ja" or "en") into dir, from the configuration the device runs,
// so that what they promise is what the device does. date is the date
// printed on the rules.
func (c *Config) Render(lang, dir string, date time.Time) ([]string, error) {
	if lang != "ja" && lang != "en" {
		return nil, fmt.Errorf("--lang must be ja or en (got %q)", lang)
	}
	var errs Errors
	if strings.TrimSpace(c.Policy.OperatorName) == "" {
		errs = append(errs, &Error{Key: "policy.operator_name", Msg: "is required to write the rules and the notice: who runs the recorder"})
	}
	if strings.TrimSpace(c.Policy.Contact) == "" {
		errs = append(errs, &Error{Key: "policy.contact", Msg: "is required to write the rules and the notice: where customers ask about recordings"})
	}
	if len(errs) > 0 {
		c.origin.place(errs)
		return nil, errs
	}
	t, err := template.New("").ParseFS(templates, "templates/*.html")
	if err != nil {
		return nil, err
	}
	style, err := templates.ReadFile("templates/style.css")
	if err != nil {
		return nil, err
	}
	template.Must(t.New("style").Parse(string(style)))

	d := c.document(lang, date)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	for _, f := range []struct {
		name, tmpl string
		data       any
	}{{RulesFile, "rules_" + lang + ".html", d}, {NoticeFile, "notice.html", c.notice(lang)}} {
		var b bytes.Buffer
		if err := t.ExecuteTemplate(&b, f.tmpl, f.data); err != nil {
			return nil, fmt.Errorf("render %s: %w", f.name, err)
		}
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return nil, err
		}
		written = append(written, path)
	}
	return written, nil
}

// document is what the rules say, from the configuration.
type document struct {
	Store, Device, Operator, Contact, Purpose, Date string
	Video, Audio, Sign, Uploads, Always             bool
	VideoSize, Bucket                               string
	FPS, SampleRate                                 int
	PreSeconds, PostSeconds, MaxMinutes             int
	RetentionDays                                   int
	// Lock is policy.object_lock when clips are uploaded and locked, else "".
	Lock          string
	Hours, Closed []string
	// DeviceLabel is device.label, or the id.
	DeviceLabel string
	// Alerted are the alert targets, by label and kind only: their URLs,
	// topics and tokens are secrets, and the rules never hold them.
	Alerted []alerted
	// AlertLink: alerts link to the console.
	AlertLink bool
	// Listen: the recorder listens for a raised voice ([listen] enabled);
	// ListenIncident: a detection also saves an incident, as a press does.
	Listen, ListenIncident bool
	// RaiseDB and Sustain are the detection's threshold over the learned
	// usual level and how long it must hold, Sustain in words ("1 second",
	// "1秒").
	RaiseDB float64
	Sustain string
	// SoundAlerted are the labels of the targets told of a detection
	// (sound.raised).
	SoundAlerted []string
}

// alerted is who one alert target tells, and of what, as the rules say it.
type alerted struct {
	Label, Kind string
	Events      []string // in the rules' language, in EventNames' order
}

// kindText names each kind of target for the rules' readers.
var kindText = map[string]map[string]string{
	"ja": {KindWebhook: "Webhook", KindNtfy: "ntfyのプッシュ通知", KindMQTT: "MQTT", KindEmail: "電子メール", KindLine: "LINE"},
	"en": {KindWebhook: "webhook", KindNtfy: "ntfy push notification", KindMQTT: "MQTT", KindEmail: "e-mail", KindLine: "LINE"},
}

// eventText says what each event is, for the rules' readers.
var eventText = map[string]map[string]string{
	"ja": {
		"incident.started":  "従業員が通報ボタンを押したとき",
		"incident.extended": "通報中にボタンが再び押され、記録が延長されたとき",
		"incident.saved":    "通報の記録を本機に保存し終えたとき",
		"incident.uploaded": "通報の記録が保管先に届いたとき",
		"press.refused":     "ボタンが押されたが記録できなかったとき（故障、記憶領域の不足、記録時間外）",
		"device.fault":      "本機が故障し、記録できなくなったとき",
		"device.recovered":  "本機が故障から回復したとき",
		"spool.full":        "送信前の記録で本機の記憶領域が一杯になったとき",
		"upload.stuck":      "記録を保管先に送れず、人の対応が必要なとき",
		"clock.unsynced":    "本機の時計が正しく合わせられていないとき",
		"sound.raised":      "カウンターで大きな声を検知したとき",
		"device.offline":    "記録時間内に本機からの連絡が途絶えたとき",
		"device.online":     "本機からの連絡が再開したとき",
		"alert.test":        "設置者が通知の届き方を確かめるとき（テスト通知）",
	},
	"en": {
		"incident.started":  "when a member of staff presses the incident button",
		"incident.extended": "when a further press extends an incident's recording",
		"incident.saved":    "when an incident's recording has been saved on the device",
		"incident.uploaded": "when an incident's recording has reached the storage",
		"press.refused":     "when a press could not be recorded (a fault, a full card, outside the recording hours)",
		"device.fault":      "when the device develops a fault and cannot record",
		"device.recovered":  "when the device recovers from a fault",
		"spool.full":        "when the device's card is full of recordings not yet sent",
		"upload.stuck":      "when a recording cannot be sent to the storage and needs a person",
		"clock.unsynced":    "when the device's clock is not set right",
		"sound.raised":      "when raised voices are detected at the counter",
		"device.offline":    "when the device stops reporting during its recording hours",
		"device.online":     "when the device reports again",
		"alert.test":        "when an installer checks that alerts arrive (a test alert)",
	},
}

// soundIncidentText is eventText's incident.started and
// incident.extended when a raised voice raises or extends an incident too
// (listen.action = "incident").
var soundIncidentText = map[string]map[string]string{
	"ja": {
		"incident.started":  "従業員が通報ボタンを押したとき、または本機が大きな声を検知して通報したとき",
		"incident.extended": "通報中にボタンが再び押されるか、大きな声が再び検知され、記録が延長されたとき",
	},
	"en": {
		"incident.started":  "when a member of staff presses the incident button, or the device raises an incident on detecting a raised voice",
		"incident.extended": "when a further press, or a further raised voice, extends an incident's recording",
	},
}

func (c *Config) document(lang string, date time.Time) document {
	d := document{
		Store: c.Device.Store, Device: c.Device.ID, Operator: c.Policy.OperatorName, Contact: c.Policy.Contact,
		Purpose: c.Policy.Purpose, Video: c.Video.Enabled, Audio: c.Audio.Enabled, Sign: c.Hardware.SignPin != "",
		Uploads: c.Storage.Enabled(), Bucket: c.Storage.Bucket, Always: len(c.Policy.RecordingHours) == 0,
		VideoSize: fmt.Sprintf("%d×%d", c.Video.Width, c.Video.Height), FPS: c.Video.FPS, SampleRate: c.Audio.SampleRate,
		PreSeconds: c.Capture.PreSeconds, PostSeconds: c.Capture.PostSeconds, MaxMinutes: (c.Capture.MaxIncidentSeconds + 59) / 60,
		RetentionDays: c.Policy.RetentionDays,
		Hours:         hoursIn(lang, c.Policy.RecordingHours),
	}
	d.DeviceLabel = cmp.Or(c.Device.Label, c.Device.ID)
	d.AlertLink = c.Alerts.ConsoleURL != ""
	if l := c.Listen; l.Enabled {
		d.Listen, d.ListenIncident, d.RaiseDB = true, l.Action == ListenIncident, l.RaiseDB
		d.Sustain = fmt.Sprintf("%g秒", l.SustainSeconds)
		if lang == "en" {
			d.Sustain = fmt.Sprintf("%g seconds", l.SustainSeconds)
			if l.SustainSeconds == 1 {
				d.Sustain = "1 second"
			}
		}
	}
	for _, t := range c.Alerts.Targets {
		a := alerted{Label: t.Label, Kind: kindText[lang][t.Kind]}
		for _, name := range EventNames {
			// Without listening no raised voice is ever detected, and the
			// rules must not say that one is alerted.
			if name == "sound.raised" && !d.Listen {
				continue
			}
			if !t.Wants(name) {
				continue
			}
			if text, ok := soundIncidentText[lang][name]; ok && d.ListenIncident {
				a.Events = append(a.Events, text)
			} else {
				a.Events = append(a.Events, eventText[lang][name])
			}
		}
		if d.Listen && t.Wants("sound.raised") {
			d.SoundAlerted = append(d.SoundAlerted, t.Label)
		}
		if len(a.Events) > 0 {
			d.Alerted = append(d.Alerted, a)
		}
	}
	if d.Uploads && c.Policy.Locked() {
		d.Lock = c.Policy.ObjectLock
	}
	layout := map[string]string{"ja": "2006年1月2日", "en": "2 January 2006"}[lang]
	for _, cd := range c.Policy.ClosedDates {
		if t, err := time.Parse("2006-01-02", cd); err == nil {
			d.Closed = append(d.Closed, t.Format(layout))
		}
	}
	d.Date = date.Format(layout)
	return d
}

// noticeSection is one language's part of the store notice.
type noticeSection struct {
	Lang, Title, Lead, HoursLabel, Light, Retention, ContactLabel string
	Hours                                                         []string
	// PolicyTitle and Policy are the company's basic policy against
	// customer harassment in this language (policy.basic_policy), its
	// lines; both empty without one.
	PolicyTitle string
	Policy      []string
}

type notice struct {
	Sections          []noticeSection
	Operator, Contact string
	// Listening: the device listens for a raised voice, and every
	// section says so, which the page's layout must make room for.
	Listening bool
}

// notice lays out the store notice: lang in large type, then every other
// language of policy.notice_languages.
func (c *Config) notice(lang string) notice {
	langs := []string{lang}
	for _, l := range c.Policy.NoticeLanguages {
		if !slices.Contains(langs, l) {
			langs = append(langs, l)
		}
	}
	n := notice{Operator: c.Policy.OperatorName, Contact: c.Policy.Contact, Listening: c.Listen.Enabled}
	what := map[string]string{"ja": "録音・録画", "en": "audio and video recording"}
	switch {
	case !c.Video.Enabled:
		what = map[string]string{"ja": "録音", "en": "audio recording"}
	case !c.Audio.Enabled:
		what = map[string]string{"ja": "録画", "en": "video recording"}
	}
	// Whether a manager hears of a detection, as sound.raised or as the
	// incident it raises: the notice promises no alert that no target
	// would send.
	incident := c.Listen.Enabled && c.Listen.Action == ListenIncident
	told := slices.ContainsFunc(c.Alerts.Targets, func(t Target) bool {
		return t.Wants("sound.raised") || incident && t.Wants("incident.started")
	})
	for _, l := range langs {
		hours := hoursIn(l, c.Policy.RecordingHours)
		var s noticeSection
		switch l {
		case "ja":
			s = noticeSection{
				Lang:       "ja",
				Title:      what["ja"] + "を実施しています",
				Lead:       "従業員をカスタマー・ハラスメントから守り、トラブルの際に事実を正確に確認するため、カウンターで" + what["ja"] + "を行っています（東京都カスタマー・ハラスメント防止条例）。",
				HoursLabel: "実施時間：",
				Light:      "実施中は表示灯が点灯します。従業員が通報ボタンを押した場合に限り、その前後の記録を保存します。",
				Retention:  retentionJa(c.Policy.RetentionDays),
				Hours:      hours, ContactLabel: "お問い合わせ：",
			}
			if incident {
				s.Light = "実施中は表示灯が点灯します。従業員が通報ボタンを押した場合、または大きな声が続いたことを機器が検知した場合に限り、その前後の記録を保存します。"
			}
			s.Light += listenNoticeJa(c.Listen.Enabled, told)
			if len(hours) == 0 {
				s.Hours = []string{"営業中は常時"}
			}
		default:
			s = noticeSection{
				Lang:       "en",
				Title:      "This counter uses " + what["en"],
				Lead:       "To protect our staff from customer harassment and to establish the facts if a problem arises, " + what["en"] + " is in use at this counter (Tokyo Customer Harassment Prevention Ordinance).",
				HoursLabel: "Hours: ",
				Light:      "The indicator light is on while recording. Only when staff press the incident button is the recording around that moment saved.",
				Retention:  retentionEn(c.Policy.RetentionDays),
				Hours:      hours, ContactLabel: "Contact: ",
			}
			if incident {
				s.Light = "The indicator light is on while recording. Only when staff press the incident button, or the device detects a sustained raised voice, is the recording around that moment saved."
			}
			if l := listenNoticeEn(c.Listen.Enabled, told); l != "" {
				s.Light += " " + l
			}
			if len(hours) == 0 {
				s.Hours = []string{"at all times"}
			}
		}
		if text := strings.TrimSpace(c.Policy.BasicPolicy[l]); text != "" {
			s.PolicyTitle = map[string]string{"ja": "カスタマーハラスメントに対する基本方針", "en": "Our basic policy on customer harassment"}[l]
			s.Policy = strings.Split(text, "\n")
		}
		n.Sections = append(n.Sections, s)
	}
	return n
}

// listenNoticeJa and listenNoticeEn tell customers that the device
// listens for a raised voice, when it does, and that a manager is told
// when one is (told).
func listenNoticeJa(enabled, told bool) string {
	switch {
	case !enabled:
		return ""
	case told:
		return "大きな声が続いた場合は、その音量（会話の内容ではありません）を機器が検知し、責任者に知らせます。"
	}
	return "大きな声が続いた場合は、その音量（会話の内容ではありません）を機器が検知します。"
}

func listenNoticeEn(enabled, told bool) string {
	switch {
	case !enabled:
		return ""
	case told:
		return "If a voice stays raised, the device notices its loudness (not the words) and alerts a manager."
	}
	return "If a voice stays raised, the device notices its loudness (not the words)."
}

func retentionJa(days int) string {
	if days == 0 {
		return "保存した記録は、必要な期間に限り厳重に管理し、不要になり次第削除します。"
	}
	return fmt.Sprintf("保存した記録は%d日後に自動的に削除します。", days)
}

func retentionEn(days int) string {
	if days == 0 {
		return "Saved recordings are kept securely only as long as needed, then deleted."
	}
	return fmt.Sprintf("Saved recordings are deleted automatically after %d days.", days)
}

var dayJa = map[string]string{"mon": "月", "tue": "火", "wed": "水", "thu": "木", "fri": "金", "sat": "土", "sun": "日"}
var dayEn = map[string]string{"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun"}

// hoursIn writes recording hours ("mon-fri 09:00-21:00") for people:
// 「月〜金曜日 09:00〜21:00」 or "Mon–Fri 09:00–21:00". Times are kept as
// configured, so what the notice says is exactly what the device does.
func hoursIn(lang string, entries []string) []string {
	var out []string
	for _, e := range entries {
		days, times, _ := strings.Cut(strings.TrimSpace(strings.ToLower(e)), " ")
		from, to, _ := strings.Cut(strings.TrimSpace(times), "-")
		overnight := to < from
		var parts []string
		for part := range strings.SplitSeq(days, ",") {
			a, b, isRange := strings.Cut(part, "-")
			switch {
			case part == "daily" || part == "*":
				parts = append(parts, map[string]string{"ja": "毎日", "en": "Every day"}[lang])
			case lang == "ja" && isRange:
				parts = append(parts, dayJa[a]+"〜"+dayJa[b])
			case lang == "ja":
				parts = append(parts, dayJa[a])
			case isRange:
				parts = append(parts, dayEn[a]+"–"+dayEn[b])
			default:
				parts = append(parts, dayEn[a])
			}
		}
		if lang == "ja" {
			d := strings.Join(parts, "・")
			if d != "毎日" {
				d += "曜日"
			}
			next := ""
			if overnight {
				next = "翌"
			}
			out = append(out, fmt.Sprintf("%s %s〜%s%s", d, from, next, to))
		} else {
			next := ""
			if overnight {
				next = " (next day)"
			}
			out = append(out, fmt.Sprintf("%s %s–%s%s", strings.Join(parts, ", "), from, to, next))
		}
	}
	return out
}
