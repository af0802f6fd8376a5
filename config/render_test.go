package config

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/image/font/sfnt"
)

const renderConfig = minimal + `
[capture]
pre_seconds = 20
post_seconds = 40
[policy]
recording_hours = ["mon-fri 09:00-21:00", "sat,sun 10:00-20:00", "fri 22:00-02:00"]
closed_dates = ["2026-12-31", "2027-01-01"]
operator_name = "株式会社まもる商店"
contact = "お客様相談室 03-1234-5678（平日10時〜17時）"
retention_days = 45
`

// text is what a page shows: its markup without tags, unescaped.
func text(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := regexp.MustCompile(`(?s)<style>.*?</style>|<title>.*?</title>`).ReplaceAllString(string(b), "")
	return html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(s, " "))
}

func TestRenderSaysWhatTheDeviceDoes(t *testing.T) {
	c, err := Parse("m.toml", []byte(renderConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"ja", "en"} {
		dir := t.TempDir()
		files, err := c.Render(lang, dir, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		rules, notice := text(t, files[0]), text(t, files[1])
		want := map[string][]string{
			"ja": {"月〜金曜日 09:00〜21:00", "土・日曜日 10:00〜20:00", "金曜日 22:00〜翌02:00", "45日", "2026年12月31日", "20秒前", "40秒後", "株式会社まもる商店", "03-1234-5678"},
			"en": {"Mon–Fri 09:00–21:00", "Sat, Sun 10:00–20:00", "Fri 22:00–02:00 (next day)", "45 days", "31 December 2026", "20 seconds before", "40 seconds after", "株式会社まもる商店", "03-1234-5678"},
		}[lang]
		for _, w := range want {
			if !strings.Contains(rules, w) {
				t.Errorf("%s rules do not say %q", lang, w)
			}
		}
		for _, w := range want[:4] { // the hours and the retention
			if !strings.Contains(notice, w) {
				t.Errorf("%s notice does not say %q", lang, w)
			}
		}
		// No other figure creeps in: every number on the notice is, whole,
		// a number the configuration holds ("1" for the "01" of a date).
		figures := map[int]bool{}
		for _, n := range regexp.MustCompile(`\d+`).FindAllString(renderConfig, -1) {
			v, _ := strconv.Atoi(n)
			figures[v] = true
		}
		for _, n := range regexp.MustCompile(`\d+`).FindAllString(notice, -1) {
			if v, _ := strconv.Atoi(n); !figures[v] {
				t.Errorf("%s notice shows %s, which is not in the configuration", lang, n)
			}
		}
	}
	if _, err := (&Config{}).Render("fr", t.TempDir(), time.Now()); err == nil {
		t.Error("Render accepted --lang fr")
	}
	c.Policy.OperatorName = ""
	if _, err := c.Render("ja", t.TempDir(), time.Now()); err == nil || !strings.HasPrefix(err.Error(), "m.toml:13: 'policy.operator_name' is required") {
		t.Errorf("Render without an operator: %v", err)
	}
}

// TestRenderInChromium renders both pages in both languages in headless
// Chromium: each renders, with the CJK font, no glyph missing from it, and
// the notice fits one A4 page.
func TestRenderInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (apt-get install chromium)")
	}
	fontFile, err := exec.Command("fc-match", "-f", "%{file}", "Noto Sans CJK JP").Output()
	if err != nil || !strings.Contains(string(fontFile), "NotoSansCJK") {
		t.Fatalf("fc-match finds %q for Noto Sans CJK JP (%v): apt-get install fonts-noto-cjk", fontFile, err)
	}
	font := cjkFont(t, string(fontFile))
	for _, variant := range []struct{ name, src string }{
		{"", renderConfig + renderAlerts},
		// The longest basic policy in both languages still fits the page.
		{"with the basic policy/", renderConfig + renderAlerts + longestBasicPolicy},
		// Listening adds a sentence to each language, and with action
		// "incident" lengthens another: it still fits with the longest
		// policy.
		{"listening/", renderConfig + renderAlerts + listenIncident},
		{"listening, with the basic policy/", renderConfig + renderAlerts + listenIncident + longestBasicPolicy},
	} {
		c, err := Parse("m.toml", []byte(variant.src), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, lang := range []string{"ja", "en"} {
			files, err := c.Render(lang, t.TempDir(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				name := variant.name + lang + "/" + filepath.Base(f)
				// Every character has a glyph in the font the pages ask for.
				var buf sfnt.Buffer
				for _, r := range text(t, f) {
					if unicode.IsSpace(r) {
						continue
					}
					if g, err := font.GlyphIndex(&buf, r); err != nil || g == 0 {
						t.Errorf("%s: %q (U+%04X) has no glyph in Noto Sans CJK JP", name, r, r)
					}
				}
				// Chromium draws it.
				shot := filepath.Join(t.TempDir(), "page.png")
				run(t, chromium, "--hide-scrollbars", "--window-size=794,1123", "--screenshot="+shot, "file://"+f)
				if ink := inked(t, shot); ink < 0.01 {
					t.Errorf("%s: the screenshot is %.2f%% ink: nothing was drawn", name, ink*100)
				}
				// With the CJK font, and the notice on one page.
				p := probe(t, chromium, f)
				if p.Noto == p.Mono || p.Page != p.Noto {
					t.Errorf("%s: text measures %.1f px in the page's font, %.1f in Noto Sans CJK JP, %.1f in monospace: the page is not set in the CJK font", name, p.Page, p.Noto, p.Mono)
				}
				if filepath.Base(f) == NoticeFile && p.Height > 1123 {
					t.Errorf("%s: the notice is %d px tall, more than one A4 page (1123 px)", name, p.Height)
				}
			}
		}
	}
}

// basicPolicyJa and basicPolicyEn are a company's basic policy on customer
// harassment, in its own words.
const (
	basicPolicyJa = "当社は、お客様からのご意見・ご要望を真摯に受け止め、サービスの向上に努めます。\n一方で、従業員の人格を否定する言動、暴言、威嚇、長時間の拘束、過剰な要求などのカスタマーハラスメントに対しては、従業員を守るため毅然と対応し、悪質な場合は警察や弁護士に相談のうえ適切に対処します。"
	basicPolicyEn = "We take every customer's opinion seriously and work to improve our service.\nWe will not tolerate customer harassment, such as abuse, threats, insults, holding staff for long periods or excessive demands: we protect our staff, and in serious cases we consult the police or a lawyer."
)

// longestBasicPolicy is policy.basic_policy at its longest in both
// languages.
var longestBasicPolicy = fmt.Sprintf("[policy.basic_policy]\nja = %q\nen = %q\n", longest(basicPolicyJa), longest(basicPolicyEn))

// longest repeats s to exactly MaxBasicPolicy characters.
func longest(s string) string {
	r := []rune(strings.Repeat(s, MaxBasicPolicy/utf8.RuneCountInString(s)+1))
	return string(r[:MaxBasicPolicy])
}

// The notice prints the company's basic policy, in each language, below
// the recording notice, when there is one, and is as before without.
func TestRenderBasicPolicy(t *testing.T) {
	src := renderConfig + fmt.Sprintf("[policy.basic_policy]\nja = %q\nen = %q\n", basicPolicyJa, basicPolicyEn)
	c, err := Parse("m.toml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"ja", "en"} {
		files, err := c.Render(lang, t.TempDir(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		notice := text(t, files[1])
		for _, want := range []string{"カスタマーハラスメントに対する基本方針", "Our basic policy on customer harassment",
			"毅然と対応し", "we consult the police or a lawyer"} {
			if !strings.Contains(notice, want) {
				t.Errorf("%s notice does not say %q", lang, want)
			}
		}
		// Below the recording notice in its own language.
		main := map[string]string{"ja": "実施中は表示灯が点灯します", "en": "The indicator light is on while recording"}[lang]
		own := map[string]string{"ja": "毅然と対応し", "en": "we consult the police or a lawyer"}[lang]
		if strings.Index(notice, own) < strings.Index(notice, main) {
			t.Errorf("%s notice: the basic policy comes before the recording notice", lang)
		}
	}
	plain, err := Parse("m.toml", []byte(renderConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := plain.Render("ja", t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text(t, files[1]), "基本方針") {
		t.Error("a notice without policy.basic_policy speaks of a basic policy")
	}
}

// cjkFont loads the Japanese face of the Noto Sans CJK collection.
func cjkFont(t *testing.T, path string) *sfnt.Font {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := sfnt.ParseCollection(b)
	if err != nil {
		t.Fatal(err)
	}
	var buf sfnt.Buffer
	for i := range coll.NumFonts() {
		f, err := coll.Font(i)
		if err != nil {
			t.Fatal(err)
		}
		if name, _ := f.Name(&buf, sfnt.NameIDFamily); name == "Noto Sans CJK JP" {
			return f
		}
	}
	t.Fatalf("%s holds no Noto Sans CJK JP", path)
	return nil
}

func run(t *testing.T, chromium string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, append([]string{"--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir=" + t.TempDir()}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %q: %v\n%s", args, err, errOut.Bytes())
	}
	return out.Bytes()
}

// inked is the share of a screenshot's pixels that are not near white.
func inked(t *testing.T, path string) float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	dark := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r+g+bl < 3*0xc000 {
				dark++
			}
		}
	}
	return float64(dark) / float64(b.Dx()*b.Dy())
}

type probeResult struct {
	Mono, Noto, Page float64
	Height           int
}

// probe loads a copy of the page with a script that measures its text in
// the page's font, in the CJK font and in monospace (the CJK font measuring
// as monospace means it is missing), and the page's height, and reads the
// answer from the DOM Chromium dumps.
func probe(t *testing.T, chromium, page string) probeResult {
	t.Helper()
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	const script = `<script>
const c = document.createElement("canvas").getContext("2d");
const s = document.body.innerText;
c.font = "16px monospace"; const mono = c.measureText(s).width;
c.font = '16px "Noto Sans CJK JP", monospace'; const noto = c.measureText(s).width;
c.font = "16px " + getComputedStyle(document.body).fontFamily; const page = c.measureText(s).width;
const r = {mono, noto, page, height: document.documentElement.scrollHeight};
const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(r);
document.body.appendChild(pre);
</script>`
	copyPath := filepath.Join(t.TempDir(), "probe.html")
	if err := os.WriteFile(copyPath, bytes.Replace(b, []byte("</body>"), []byte(script+"</body>"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := run(t, chromium, "--window-size=794,1123", "--dump-dom", "file://"+copyPath)
	m := regexp.MustCompile(`<pre id="probe">(.*?)</pre>`).FindSubmatch(dom)
	if m == nil {
		t.Fatalf("%s: no probe result in the DOM", page)
	}
	var r probeResult
	if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// The rules say what the lock does, and only what it does: governance
// mode can be bypassed by a right an administrator grants, compliance
// mode by no one, and no lock promises nothing.
func TestRenderSaysWhatTheLockDoes(t *testing.T) {
	for _, tc := range []struct {
		lock   string
		ja, en string
		notJa  []string
		notEn  []string
	}{
		{lock: "governance", ja: "特別に与える権限", en: "without a special right", notJa: []string{"誰であっても"}, notEn: []string{"not even"}},
		{lock: "compliance", ja: "管理者を含め誰であっても削除・変更できない", en: "not even the storage's administrator", notJa: []string{"特別に"}, notEn: []string{"special right"}},
		{lock: "none", notJa: []string{"誰であっても", "特別に"}, notEn: []string{"not even", "special right"}},
	} {
		src := renderConfig + "object_lock = \"" + tc.lock + "\"\n[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\n"
		c, err := Parse("m.toml", []byte(src), nil)
		if err != nil {
			t.Fatal(err)
		}
		for lang, want := range map[string]string{"ja": tc.ja, "en": tc.en} {
			files, err := c.Render(lang, t.TempDir(), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			rules := text(t, files[0])
			if want != "" && !strings.Contains(rules, want) {
				t.Errorf("object_lock = %q: %s rules do not say %q", tc.lock, lang, want)
			}
			not := tc.notEn
			if lang == "ja" {
				not = tc.notJa
			}
			for _, n := range not {
				if strings.Contains(rules, n) {
					t.Errorf("object_lock = %q: %s rules say %q", tc.lock, lang, n)
				}
			}
		}
	}
}

// renderAlerts are targets of every kind, each with what must never reach
// the rules: a token in a URL, a topic, a host, a LINE group's id.
const renderAlerts = `
[alerts]
console_url = "https://console.example.com"
[[alerts.target]]
kind = "ntfy"
label = "店長のスマホ"
topic = "shop1-Zq8rT2kd7VwX"
events = ["incident.*"]
[[alerts.target]]
kind = "webhook"
label = "本部 <Slack> & 警備"
url = "https://hooks.slack.com/services/T0/B0/tok3n"
format = "slack"
[[alerts.target]]
kind = "ntfy"
label = "オーナー"
url = "https://ntfy.example.jp"
topic = "owner-7YqLm3Xc9Pw2"
events = ["device.fault", "spool.full"]
[[alerts.target]]
kind = "email"
label = "本社"
url = "smtps://smtp.example.jp:465"
from = "mamoru@shop.example.jp"
to = ["owner@shop.example.jp"]
events = ["incident.started"]
[[alerts.target]]
kind = "line"
label = "店舗グループ"
token_file = "/etc/mamoru/line.token"
to = ["C0123456789abcdef0123456789abcdef"]
events = ["press.refused"]
`

// The rules say who is alerted, by label and kind, of what, and what an
// alert holds; never where it goes.
func TestRenderSaysWhoIsAlerted(t *testing.T) {
	c, err := Parse("m.toml", []byte(strings.Replace(renderConfig, "[device]\n", "[device]\nlabel = \"カウンター1\"\n", 1)+renderAlerts), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"ja": {"カウンター1（counter-1）", "店長のスマホ（ntfyのプッシュ通知）：従業員が通報ボタンを押したとき、通報中にボタンが再び押され",
			"本部 <Slack> & 警備（Webhook）：", "ボタンが押されたが記録できなかったとき", "オーナー（ntfyのプッシュ通知）：本機が故障し、記録できなくなったとき、送信前の記録で",
			"管理画面でその通報を確認するためのリンク", "音声・映像）は連絡に含めません", "本社（電子メール）：従業員が通報ボタンを押したとき",
			"店舗グループ（LINE）：ボタンが押されたが記録できなかったとき"},
		"en": {"カウンター1 (counter-1)", "店長のスマホ (ntfy push notification): when a member of staff presses the incident button; when a further press",
			"本部 <Slack> & 警備 (webhook): ", "when a press could not be recorded", "オーナー (ntfy push notification): when the device develops a fault and cannot record; when the device's card is full",
			"a link to it on the managers' console", "neither audio nor video", "本社 (e-mail): when a member of staff presses the incident button",
			"店舗グループ (LINE): when a press could not be recorded"},
	}
	never := []string{"shop1-Zq8rT2kd7VwX", "tok3n", "hooks.slack.com", "smtp.example.jp", "owner@shop.example.jp", "console.example.com", "://",
		"C0123456789abcdef0123456789abcdef", "line.token"}
	for _, lang := range []string{"ja", "en"} {
		files, err := c.Render(lang, t.TempDir(), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		rules := text(t, files[0])
		for _, w := range want[lang] {
			if !strings.Contains(rules, w) {
				t.Errorf("%s rules do not say %q", lang, w)
			}
		}
		raw, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "<Slack>") {
			t.Errorf("%s rules hold a label's markup unescaped", lang)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range never {
				if strings.Contains(string(b), n) {
					t.Errorf("%s %s shows %q, which only the device may know", lang, filepath.Base(f), n)
				}
			}
		}
	}

	// Without a console, no link is promised; without targets, no one is
	// alerted, and the rules say so.
	for _, tc := range []struct {
		src         string
		want, never map[string]string
	}{
		{strings.Replace(renderAlerts, "console_url = \"https://console.example.com\"\n", "", 1),
			map[string]string{"ja": "通報に関する連絡では通報の番号のみを含めます", "en": "for an incident, its reference. It never"},
			map[string]string{"ja": "リンク", "en": "console"}},
		{"",
			map[string]string{"ja": "誰にも自動では連絡しません", "en": "The device alerts no one automatically"},
			map[string]string{"ja": "次の宛先", "en": "alerts these"}},
	} {
		c, err := Parse("m.toml", []byte(renderConfig+tc.src), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, lang := range []string{"ja", "en"} {
			files, err := c.Render(lang, t.TempDir(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			rules := text(t, files[0])
			if !strings.Contains(rules, tc.want[lang]) || strings.Contains(rules, tc.never[lang]) {
				t.Errorf("%s rules: want %q and not %q in\n%s", lang, tc.want[lang], tc.never[lang], rules)
			}
			if !strings.Contains(rules, "counter-1") || strings.Contains(rules, "counter-1（") || strings.Contains(rules, "counter-1 (") {
				t.Errorf("%s rules: a device without a label is named by its id alone", lang)
			}
		}
	}
}

// Every event and every kind of target has its words in both languages.
func TestRenderNamesEveryEventAndKind(t *testing.T) {
	for _, lang := range []string{"ja", "en"} {
		for _, n := range EventNames {
			if eventText[lang][n] == "" {
				t.Errorf("event %s has no %s text for the rules", n, lang)
			}
		}
		for _, k := range Kinds {
			if kindText[lang][k] == "" {
				t.Errorf("kind %s has no %s name for the rules", k, lang)
			}
		}
		if len(eventText[lang]) != len(EventNames) {
			t.Errorf("%s: %d event texts for %d events", lang, len(eventText[lang]), len(EventNames))
		}
	}
}
