package handover

import (
	"bytes"
	"context"
	"fmt"
	"html"
	imagepng "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"mamoru/audit"
	"mamoru/outbox"
)

const (
	clipSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	copySHA = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
	keyFP   = "3c9909afec25354d551dae21590bb26e38d53f2173b8d3dc3eee4c047e7ab1c1"
)

// fullReport is a report with every field set; the store's name and one
// actor hold markup that must come out as text.
func fullReport(t *testing.T) Report {
	t.Helper()
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	press := time.Date(2026, 11, 20, 5, 3, 4, 0, time.UTC) // 14:03:04 in Tokyo
	return Report{
		Made:   time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		MadeBy: "店長 佐藤",
		Zone:   tokyo,
		Ref:    "shibuya/counter-1/20261120-140304-a1b2",
		Manifest: outbox.Manifest{
			Version:   2,
			Object:    "shibuya/counter-1/2026/11/20/20261120-140304-a1b2",
			Device:    "counter-1",
			Store:     "渋谷<script>alert(1)</script>店",
			Incident:  "20261120-140304-a1b2",
			State:     outbox.StateComplete,
			Trigger:   "button",
			Urgent:    true,
			PressTime: press,
			Presses: []outbox.Press{
				{Time: press, Source: "button"},
				{Time: press.Add(42 * time.Second), Source: "console-extend"},
			},
			PressesOmitted:  3,
			ClipStart:       press.Add(-30 * time.Second),
			ClipEnd:         press.Add(90 * time.Second),
			DurationSeconds: 120,
			Tracks: []outbox.Track{
				{Kind: "video", Codec: "h264", Width: 1280, Height: 720, Frames: 3600, DurationSeconds: 120},
				{Kind: "audio", Codec: "flac", SampleRate: 48000, Channels: 1, Frames: 6000, Samples: 5760000, StartSeconds: 0.021, DurationSeconds: 120},
			},
			Clip: outbox.ClipDigest{File: "clip.mp4", SHA256: clipSHA, Size: 9281234},
			Indicator: []outbox.IndicatorLog{
				{Time: press.Add(-3600 * time.Second), On: true},
				{Time: press.Add(60 * time.Second), On: false},
				{Time: press.Add(61 * time.Second), On: true},
			},
			Software:        "mamoru v0.9.0-test",
			ClockSynced:     false,
			PreRollSyncedMS: 11.9,
			Notes:           []string{"device note: pre-roll shorter than configured"},
			AuditHead:       &audit.Head{Seq: 4711, Hash: "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c"},
		},
		Key: Key{Store: "shibuya", Device: "counter-1", Fingerprint: keyFP, File: "counter-1.pub.pem"},
		Checks: []Check{
			{What: "clip.mp4 SHA-256 = manifest.clip.sha256", How: "sha256sum clip.mp4", Passed: true},
			{What: "manifest.sig over manifest.json", How: "openssl pkeyutl -verify -pubin -inkey counter-1.pub.pem -rawin -in manifest.json -sigfile manifest.sig.bin", Passed: false, Detail: "signature does not verify"},
			{What: "manifest.object = the object's key", How: "compare manifest.json's object with the bucket key", Passed: true},
		},
		Files: []File{
			{Name: "clip.mp4", Size: 9281234, SHA256: clipSHA},
			{Name: "viewing-copy.mp4", Size: 9381234, SHA256: copySHA, DerivedFrom: "clip.mp4", Command: "mamoru clips viewing-copy clip.mp4 -o copy.mp4"},
			{Name: "manifest.json", Size: 1234, SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"},
		},
		Objects: []Object{
			{Key: "shibuya/counter-1/2026/11/20/20261120-140304-a1b2/clip.mp4", Size: 9281234,
				LastModified: time.Date(2026, 11, 20, 5, 5, 7, 0, time.UTC), VersionID: "v-3f2a"},
		},
		Custody: []CustodyEvent{
			{Time: time.Date(2026, 11, 21, 1, 0, 0, 0, time.UTC), Action: "view", Actor: "manager<script>x</script>", Detail: "console"},
			{Action: "hold", Actor: "本部 法務", Detail: "legal hold"},
			{Time: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC), Action: "handover", Actor: "店長 佐藤", Detail: "to 弁護士 & police"},
		},
		Notes: []string{"The viewing copy was not tried in Windows' own player."},
	}
}

func render(t *testing.T, r Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteReport(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestWriteReportShowsEverything: every field of a full report is on the
// page, escaped, with device times in the device's zone.
func TestWriteReportShowsEverything(t *testing.T) {
	r := fullReport(t)
	page := render(t, r)
	text := html.UnescapeString(page)
	for _, tc := range []struct{ what, want string }{
		{"store, escaped", "渋谷&lt;script&gt;alert(1)&lt;/script&gt;店"},
		{"actor, escaped", "manager&lt;script&gt;x&lt;/script&gt;"},
		{"device", "counter-1"},
		{"incident id", "20261120-140304-a1b2"},
		{"ref", r.Ref},
		{"object", r.Manifest.Object},
		{"first press in the zone", "2026-11-20 14:03:04.000 JST"},
		{"second press and its source", "2026-11-20 14:03:46.000 JST</td><td>console-extend"},
		{"presses omitted", "3 further press(es)"},
		{"clip start in the zone", "2026-11-20 14:02:34.000 JST"},
		{"clip end in the zone", "2026-11-20 14:04:34.000 JST"},
		{"duration", "120.000 s"},
		{"video track", "1280×720"},
		{"audio track", "48000 Hz, 1 ch, 5760000 samples"},
		{"track start", "0.021 s"},
		{"indicator on from", "● 点灯 <span class=\"en\">on</span></td><td>2026-11-20 13:03:04.000 JST</td><td>2026-11-20 14:04:04.000 JST"},
		{"indicator off", "○ 消灯 <span class=\"en\">off</span></td><td>2026-11-20 14:04:04.000 JST</td><td>2026-11-20 14:04:05.000 JST"},
		{"indicator's last span ends at the clip's end", "14:04:05.000 JST</td><td>2026-11-20 14:04:34.000 JST"},
		{"clock not synced", "NOT set by NTP"},
		{"pre-roll", "11.9 ms"},
		{"audit head", "seq 4711, b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c"},
		{"software", "mamoru v0.9.0-test"},
		{"urgent", "held: urgent"},
		{"fingerprint", `<p class="fingerprint">` + keyFP + `</p>`},
		{"key file", "counter-1.pub.pem"},
		{"what proves what (ja)", "このパッケージ自体のファイル（SHA256SUMS とこの報告書）は機器が署名したものではなく"},
		{"what proves what (en)", "The package's own files (SHA256SUMS and this report) are not signed by the device"},
		{"check's command", "openssl pkeyutl -verify -pubin -inkey counter-1.pub.pem -rawin -in manifest.json -sigfile manifest.sig.bin"},
		{"check's detail", "signature does not verify"},
		{"file hash", "<span class=\"hash\">" + copySHA + "</span>"},
		{"derived from with the original's hash", "derived from</span> <code>clip.mp4</code> (sha256 <span class=\"hash\">" + clipSHA + "</span>)"},
		{"the command that makes it again", "<code>mamoru clips viewing-copy clip.mp4 -o copy.mp4</code>"},
		{"players not tested", "have not been tested with it"},
		{"object's version", "v-3f2a"},
		{"Last-Modified in UTC", "2026-11-20 05:05:07 UTC"},
		{"Last-Modified in the zone", "2026-11-20 14:05:07.000 JST"},
		{"custody time in the zone", "2026-11-21 10:00:00.000 JST</td><td>view"},
		{"custody time unknown", "不明 / unknown</td><td>hold"},
		{"custody detail, escaped", "to 弁護士 &amp; police"},
		{"report's note", "The viewing copy was not tried in Windows&#39; own player."},
		{"manifest's note", "device note: pre-roll shorter than configured"},
		{"made by and when", "made by 店長 佐藤 at 2026-11-30 17:00:00.000 JST"},
	} {
		if !strings.Contains(page, tc.want) {
			t.Errorf("%s: the report does not hold %q", tc.what, tc.want)
		}
	}
	if want := "Asia/Tokyo (JST, UTC+09:00)"; !strings.Contains(text, want) {
		t.Errorf("the report does not name the zone as %q", want)
	}
	for _, bad := range []string{"<script>", "<script "} {
		if strings.Contains(page, bad) {
			t.Errorf("the report holds %q: markup from the data was not escaped", bad)
		}
	}
	// Self-contained: nothing is fetched when it opens.
	for _, bad := range []string{"http://", "https://", "<link", "@import", "url(", "<img", "<script"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("the report holds %q: it must stand alone", bad)
		}
	}
	if strings.Contains(text, "UNSIGNED") {
		t.Error("a signed report says UNSIGNED")
	}
	if got := render(t, r); got != page {
		t.Error("the same report rendered twice gives different bytes")
	}
}

// TestWriteReportFailedCheck: a failed check is failed in both languages,
// in its row and above everything else, with a mark that is not a colour.
func TestWriteReportFailedCheck(t *testing.T) {
	page := render(t, fullReport(t))
	row := regexp.MustCompile(`(?m)^<tr><td class="result">(.*?)</td><td>manifest.sig over manifest.json`).FindStringSubmatch(page)
	if row == nil {
		t.Fatal("no row for the signature check")
	}
	for _, want := range []string{"× 不合格", "FAILED"} {
		if !strings.Contains(row[1], want) {
			t.Errorf("the failed check's result %q does not say %q", row[1], want)
		}
	}
	if strings.Contains(row[1], "合格</span><br><span class=\"en\">passed") {
		t.Errorf("the failed check's result says passed: %q", row[1])
	}
	banner := page[strings.Index(page, "<body>"):strings.Index(page, "<h1>")]
	for _, want := range []string{"検証に失敗した項目が 1 件あります", "1 check(s) FAILED"} {
		if !strings.Contains(banner, want) {
			t.Errorf("above the title, the report does not say %q: %s", want, banner)
		}
	}
	if n := strings.Count(page, "○ 合格"); n != 2 {
		t.Errorf("%d checks show as passed, want 2", n)
	}

	r := fullReport(t)
	r.Checks[1].Passed = true
	if page := render(t, r); strings.Contains(page, "FAILED") || strings.Contains(page, "不合格") {
		t.Error("a report whose checks all passed says FAILED")
	}
}

// TestWriteReportUnsigned: a report with no key says UNSIGNED on its first
// line, before the title.
func TestWriteReportUnsigned(t *testing.T) {
	r := fullReport(t)
	r.Key = Key{}
	page := render(t, r)
	body := page[strings.Index(page, "<body>")+len("<body>"):]
	first := strings.TrimSpace(body)
	if !strings.HasPrefix(first, `<p class="banner">UNSIGNED 署名なし`) {
		t.Errorf("an unsigned report's first line is not UNSIGNED: %.120s", first)
	}
	if !strings.Contains(page, "<title>UNSIGNED") {
		t.Error("an unsigned report's title does not say UNSIGNED")
	}
}

// TestWriteReportZone: with no zone the report says so and uses UTC; an
// empty report still renders.
func TestWriteReportZone(t *testing.T) {
	r := fullReport(t)
	r.Zone = nil
	page := render(t, r)
	for _, want := range []string{"the device&#39;s zone is unknown: UTC", "2026-11-20 05:03:04.000 UTC"} {
		if !strings.Contains(page, want) {
			t.Errorf("with no zone, the report does not say %q", want)
		}
	}
	if page := render(t, Report{}); !strings.Contains(page, "UNSIGNED") || !strings.Contains(page, "何も検証されていません") {
		t.Error("an empty report does not say it is unsigned and that nothing was verified")
	}
}

// TestReportGlyphs: every character of the report, words and marks, has a
// glyph in Noto Sans CJK JP, the font it asks for first, so that nothing
// prints as an empty box or in a fallback font; and table rows, the key's
// box and the facts are kept whole across page breaks.
func TestReportGlyphs(t *testing.T) {
	page := render(t, fullReport(t))
	css, err := templates.ReadFile("templates/report.css")
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range []string{`tr, .keep { break-inside: avoid;`, `.box {`, `thead { display: table-header-group; }`, `@page { size: A4 portrait;`} {
		if !strings.Contains(string(css), rule) || !strings.Contains(page, rule) {
			t.Errorf("the report's inline style does not hold %q", rule)
		}
	}
	if _, err := exec.LookPath("fc-list"); err != nil {
		t.Skip("fc-list is not installed (apt-get install fontconfig): glyphs not checked")
	}
	out, err := exec.Command("fc-list", "--format", "%{charset}\n", "Noto Sans CJK JP:style=Regular").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("fc-list finds no Noto Sans CJK JP (%v): apt-get install fonts-noto-cjk", err)
	}
	var ranges [][2]rune
	for _, f := range strings.Fields(strings.SplitN(string(out), "\n", 2)[0]) {
		lo, hi, isRange := strings.Cut(f, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.ParseUint(lo, 16, 32)
		b, err2 := strconv.ParseUint(hi, 16, 32)
		if err1 != nil || err2 != nil {
			t.Fatalf("fc-list charset %q", f)
		}
		ranges = append(ranges, [2]rune{rune(a), rune(b)})
	}
	body := page[strings.Index(page, "<body>"):]
	text := html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(body, " "))
	missing := map[rune]bool{}
	for _, r := range text {
		if unicode.IsSpace(r) || missing[r] {
			continue
		}
		if !slices.ContainsFunc(ranges, func(rg [2]rune) bool { return rg[0] <= r && r <= rg[1] }) {
			missing[r] = true
			t.Errorf("%q (U+%04X) has no glyph in Noto Sans CJK JP", r, r)
		}
	}
}

// TestReportPrintsOnA4 prints the report with headless Chromium and reads
// the PDF: A4 pages, few of them, and (with poppler's pdftotext) the
// incident, a full hash and the Japanese title in its text.
func TestReportPrintsOnA4(t *testing.T) {
	pdf := printReport(t, fullReport(t))
	b, err := os.ReadFile(pdf)
	if err != nil {
		t.Fatal(err)
	}
	boxes := mediaBoxes(b)
	if pdfinfo, err := exec.LookPath("pdfinfo"); err == nil {
		out, err := exec.Command(pdfinfo, "-f", "1", "-l", "1000", pdf).Output()
		if err != nil {
			t.Fatalf("pdfinfo: %v", err)
		}
		boxes = nil
		for _, m := range regexp.MustCompile(`(?m)^Page +\d+ size: +([\d.]+) x ([\d.]+) pts`).FindAllSubmatch(out, -1) {
			w, _ := strconv.ParseFloat(string(m[1]), 64)
			h, _ := strconv.ParseFloat(string(m[2]), 64)
			boxes = append(boxes, [2]float64{w, h})
		}
	} else {
		t.Log("pdfinfo is not installed (apt-get install poppler-utils): page sizes read from the PDF's /MediaBox entries")
	}
	if len(boxes) == 0 {
		t.Fatal("no page size found in the PDF")
	}
	if len(boxes) > 4 {
		t.Errorf("the report prints on %d pages, want at most 4 for an ordinary incident", len(boxes))
	}
	for i, wh := range boxes {
		if wh[0] < 594 || wh[0] > 596 || wh[1] < 841 || wh[1] > 843 {
			t.Errorf("page %d is %.1f x %.1f pt, not A4 (595 x 842)", i+1, wh[0], wh[1])
		}
	}
	t.Logf("%d A4 pages", len(boxes))

	pdftotext, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Log("pdftotext is not installed (apt-get install poppler-utils): the PDF's text is not checked")
		return
	}
	out, err := exec.Command(pdftotext, "-raw", pdf, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	// A hash may be wrapped across lines: compare the text without spaces.
	flat := strings.Join(strings.Fields(string(out)), "")
	for _, want := range []string{"20261120-140304-a1b2", clipSHA, copySHA, keyFP, "引き渡し報告書", "不合格"} {
		if !strings.Contains(flat, want) {
			t.Errorf("the printed report's text does not hold %q", want)
		}
	}
}

// TestReportKeepsRowsWhole prints a long incident, whose custody table
// runs over pages and whose rows wrap over several lines, and finds each
// row's first and last words on the same page: no row is cut by a page
// break.
func TestReportKeepsRowsWhole(t *testing.T) {
	r := fullReport(t)
	r.Custody = nil
	for i := range 80 {
		r.Custody = append(r.Custody, CustodyEvent{
			Time: r.Made.Add(time.Duration(i) * time.Minute), Action: "view", Actor: "manager",
			Detail: fmt.Sprintf("S%03d opened in the console from the shop's office, watched the clip to the end and closed it again E%03d", i, i),
		})
	}
	pdf := printReport(t, r)
	pdftotext, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Skip("pdftotext is not installed (apt-get install poppler-utils): rows not checked")
	}
	out, err := exec.Command(pdftotext, "-raw", pdf, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	pages := strings.Split(string(out), "\f")
	if len(pages) < 3 {
		t.Fatalf("the long report prints on %d pages: the custody table does not cross a page", len(pages))
	}
	pageOf := func(word string) int {
		for i, p := range pages {
			if strings.Contains(p, word) {
				return i + 1
			}
		}
		return 0
	}
	for i := range r.Custody {
		first, last := pageOf(fmt.Sprintf("S%03d", i)), pageOf(fmt.Sprintf("E%03d", i))
		if first == 0 || first != last {
			t.Errorf("custody row %d starts on page %d and ends on page %d", i, first, last)
		}
	}
}

// printReport prints r's report to PDF with headless Chromium and returns
// the PDF's path. Without chromium the test is skipped, except in CI,
// which installs it.
func printReport(t *testing.T, r Report) string {
	t.Helper()
	return chromiumReport(t, r, "--print-to-pdf=%s", "report.pdf", "--no-pdf-header-footer")
}

// chromiumReport renders r's report with headless Chromium, with flag (a
// format taking the output's path) writing the file out in a temporary
// directory, and returns that file's path.
func chromiumReport(t *testing.T, r Report, flag, out string, more ...string) string {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (apt-get install chromium)")
		}
		t.Skip("chromium is not installed (apt-get install chromium): the report is not printed")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, []byte(render(t, r)), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, out)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), fmt.Sprintf(flag, file)}, more...)
	cmd := exec.CommandContext(ctx, chromium, append(args, "file://"+page)...)
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	return file
}

// TestReportScreenshot: Chromium draws the report's first screen, in
// Japanese, as a page a person reads (not blank); with MAMORU_SCREENSHOTS
// set to a directory, the screenshot is kept there as
// handover-report.png (docs/handover-report.png is one).
func TestReportScreenshot(t *testing.T) {
	png := chromiumReport(t, fullReport(t), "--screenshot=%s", "report.png", "--window-size=1000,1400", "--hide-scrollbars")
	b, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagepng.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("chromium's screenshot: %v", err)
	}
	dark := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 2 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 2 {
			if r, g, b, _ := img.At(x, y).RGBA(); r+g+b < 3*0x4000 {
				dark++
			}
		}
	}
	if dark < 1000 {
		t.Errorf("the screenshot has %d dark pixels: a blank page", dark)
	}
	if dir := os.Getenv("MAMORU_SCREENSHOTS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "handover-report.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// mediaBoxes reads the page sizes from a PDF's uncompressed /MediaBox
// entries (Chromium writes page dictionaries uncompressed).
func mediaBoxes(pdf []byte) [][2]float64 {
	var boxes [][2]float64
	re := regexp.MustCompile(`/MediaBox\s*\[\s*(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s*\]`)
	for _, m := range re.FindAllSubmatch(pdf, -1) {
		var v [4]float64
		for i := range v {
			v[i], _ = strconv.ParseFloat(string(m[i+1]), 64)
		}
		boxes = append(boxes, [2]float64{v[2] - v[0], v[3] - v[1]})
	}
	return boxes
}
