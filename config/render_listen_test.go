package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

// listenAlert and listenIncident turn listening on, with each action; the
// target told of detections comes after renderAlerts' targets.
const (
	listenAlert    = "[listen]\nenabled = true\nraise_db = 18\nsustain_seconds = 1.5\n"
	listenIncident = "[listen]\nenabled = true\naction = \"incident\"\n"
	soundTarget    = "[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"副店長\"\ntopic = \"deputy-Zq8rT2kd7VwX\"\nevents = [\"sound.raised\"]\n"
)

// The rules and the notice say that the device listens, what that is and
// is not, and what follows a detection, exactly when it listens; with
// action "incident" nothing says that only a press saves a recording.
func TestRenderSaysWhatListeningDoes(t *testing.T) {
	// What each mode's pages say, by language, and what they must not.
	type says struct{ rules, notRules, notice, notNotice []string }
	// onlyPress is every sentence that says a press alone saves anything.
	onlyPress := map[string][]string{
		"ja": {"従業員が通報ボタンを押した場合に限り", "ボタンが押されない限り"},
		"en": {"Only when a member of staff presses the incident button is anything saved", "Without a press, nothing is ever saved",
			"Only when staff press the incident button is the recording around that moment saved"},
	}
	// listening is what is said only when the device listens.
	listening := map[string][]string{
		"ja": {"大きな声の検知", "大きな声", "音量", "ラウドネス"},
		"en": {"Noticing a raised voice", "raised voice", "loudness", "Loudness"},
	}
	for _, tc := range []struct {
		name, src string
		want      map[string]says
	}{
		{"disabled", renderConfig + renderAlerts, map[string]says{
			"ja": {rules: onlyPress["ja"][:2], notRules: listening["ja"], notice: onlyPress["ja"][:1], notNotice: listening["ja"]},
			"en": {rules: onlyPress["en"][:2], notRules: listening["en"], notice: onlyPress["en"][2:], notNotice: listening["en"]},
		}},
		{"alert", renderConfig + renderAlerts + soundTarget + listenAlert, map[string]says{
			"ja": {
				rules: append(onlyPress["ja"][:2:2],
					"<h3>大きな声の検知</h3>", "声がふだんより18 dB以上大きい状態が1.5秒以上続いたときに", "言葉の内容を聞き取ることも、誰の声かを見分けることもありません",
					"いわゆるAIでもありません", "学習するのは時間帯ごとの音量の数値だけです", "そのために記録（音声・映像）を保存することはありません",
					"第7項の宛先のうち本部 <Slack> & 警備、副店長に連絡し、管理責任者に知らせます", "その数値（音量、ふだんの音量、それを上回った幅、続いた時間）とともに監査ログに記録します",
					"マイクに顔を近づけて話す人と声を荒らげている人", "ラジオやテレビの音と人の声", "人が様子を確かめるためのきっかけにすぎず",
					"副店長（ntfyのプッシュ通知）：カウンターで大きな声を検知したとき", "ボタン操作、大きな声の検知、保存した記録は",
					"従業員が通報ボタンを押したとき、通報中に"),
				notRules:  []string{"通報として保存します", "至急", "本機が大きな声を検知して通報したとき", "宛先は設定されていない"},
				notice:    []string{onlyPress["ja"][0], "大きな声が続いた場合は、その音量（会話の内容ではありません）を機器が検知し、責任者に知らせます。"},
				notNotice: []string{"機器が検知した場合"},
			},
			"en": {
				rules: append(onlyPress["en"][:2:2],
					"<h3>Noticing a raised voice</h3>", "a voice stays 18 dB or more above that usual level for 1.5 seconds or more",
					"It does not recognise words or who is speaking", `it is not "AI"`, "what it learns is a loudness figure for each hour, not sound",
					"it saves no recording because of it, neither audio nor video", "through these targets of section 7: 本部 <Slack> & 警備, 副店長.",
					"written to the audit log with its figures: the level, the usual level, how far above it the voice was, and for how long",
					"someone leaning close to the microphone", "a loud but calm voice from an angry one", "a radio or television from a person",
					"a prompt for a person to go and look, never a finding against a customer",
					"副店長 (ntfy push notification): when raised voices are detected at the counter",
					"every press of the button, every detection of a raised voice and every saved recording",
					"(the button, or another terminal)"),
				notRules:  []string{"as an incident", "urgent", "raises an incident on detecting", "No alert target is set"},
				notice:    []string{onlyPress["en"][2], "If a voice stays raised, the device notices its loudness (not the words) and alerts a manager."},
				notNotice: []string{"or the device detects"},
			},
		}},
		{"incident", renderConfig + renderAlerts + listenIncident, map[string]says{
			"ja": {
				rules: []string{"従業員が通報ボタンを押した場合、または本機が、大きな声が続いたことを検知した場合（下記）に限り、その時点の20秒前から40秒後まで",
					"ボタンが押されるか、大きな声が検知されるかしない限り、記録が保存されることはありません。", "声がふだんより15 dB以上大きい状態が1秒以上続いたときに",
					"従業員が通報ボタンを押した場合とまったく同じく、その前後の記録を通報として保存します", "この通報が至急の扱いになることはありません",
					"第7項の宛先のうち本部 <Slack> & 警備に連絡し、管理責任者に知らせます",
					"店長のスマホ（ntfyのプッシュ通知）：従業員が通報ボタンを押したとき、または本機が大きな声を検知して通報したとき、通報中に",
					"通報の経路（ボタン、大きな声の検知など）", "監査ログに記録します"},
				notRules:  append(onlyPress["ja"][:2:2], "そのために記録（音声・映像）を保存することはありません", "宛先は設定されていない"),
				notice:    []string{"従業員が通報ボタンを押した場合、または大きな声が続いたことを機器が検知した場合に限り、その前後の記録を保存します。", "機器が検知し、責任者に知らせます。"},
				notNotice: onlyPress["ja"][:1],
			},
			"en": {
				rules: []string{"Only when a member of staff presses the incident button, or the device detects a sustained raised voice (below), is anything saved: from 20 seconds before that moment to 40 seconds after it",
					"Without a press or a detection, nothing is ever saved.", "15 dB or more above that usual level for 1 second or more",
					"saves the recording around that moment as an incident, exactly as a press of the button does", "it is never marked urgent",
					"through these targets of section 7: 本部 <Slack> & 警備.",
					"店長のスマホ (ntfy push notification): when a member of staff presses the incident button, or the device raises an incident on detecting a raised voice; when a further press",
					"(the button, the detection of a raised voice, or another terminal)", "written to the audit log with its figures"},
				notRules:  append(onlyPress["en"][:2:2], "saves no recording because of it", "No alert target is set"),
				notice:    []string{"Only when staff press the incident button, or the device detects a sustained raised voice, is the recording around that moment saved.", "(not the words) and alerts a manager."},
				notNotice: onlyPress["en"][2:],
			},
		}},
		// No target hears of a detection: the pages promise no alert.
		{"incident, no one alerted", renderConfig + listenIncident, map[string]says{
			"ja": {rules: []string{"大きな声を検知したときも、故障したときも、誰にも自動では連絡しません", "検知そのものは誰にも連絡されません。"},
				notRules: []string{"第7項のとおり連絡します", "管理責任者に知らせます"},
				notice:   []string{"大きな声が続いた場合は、その音量（会話の内容ではありません）を機器が検知します。"}, notNotice: []string{"知らせます"}},
			"en": {rules: []string{"whether the incident button is pressed, a raised voice is detected or the device fails", "no one is alerted of a detection as such."},
				notRules: []string{"as section 7 says", "through these targets"},
				notice:   []string{"If a voice stays raised, the device notices its loudness (not the words)."}, notNotice: []string{"alerts a manager"}},
		}},
	} {
		c, err := Parse("m.toml", []byte(tc.src), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, lang := range []string{"ja", "en"} {
			files, err := c.Render(lang, t.TempDir(), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			rules, notice := markup(t, files[0]), text(t, files[1])
			w := tc.want[lang]
			check := func(page, got string, want, not []string) {
				t.Helper()
				for _, s := range want {
					if !strings.Contains(got, s) {
						t.Errorf("%s, %s %s: does not say %q", tc.name, lang, page, s)
					}
				}
				for _, s := range not {
					if strings.Contains(got, s) {
						t.Errorf("%s, %s %s: says %q", tc.name, lang, page, s)
					}
				}
			}
			check("rules", rules, w.rules, w.notRules)
			check("notice", notice, w.notice, w.notNotice)
		}
	}
}

// markup is a page as written, its markup kept but its escapes undone,
// so that a test can find a heading and text that crosses no tag.
func markup(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer("&#34;", `"`, "&#39;", "'", "&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(string(b))
}

// With listening off, the pages are what they were before [listen]
// existed, whatever the rest of the table holds: they are rendered as for
// a zero Listen, byte for byte. A target that takes sound.raised is not
// said to hear of raised voices, and one that takes nothing else is not
// listed.
func TestRenderListeningOffIsAsBefore(t *testing.T) {
	off := "[listen]\nenabled = false\naction = \"incident\"\nraise_db = 30\nsustain_seconds = 5\n"
	every := "[[alerts.target]]\nkind = \"ntfy\"\nlabel = \"全部\"\ntopic = \"every-Zq8rT2kd7VwXa\"\nevents = [\"*\"]\n"
	for _, src := range []string{
		renderConfig + renderAlerts + off,
		renderConfig + renderAlerts + longestBasicPolicy + off,
		renderConfig + off,
		renderConfig + renderAlerts + soundTarget + every + off,
	} {
		c, err := Parse("m.toml", []byte(src), nil)
		if err != nil {
			t.Fatal(err)
		}
		zero := c
		zero.Listen = Listen{}
		for _, lang := range []string{"ja", "en"} {
			date := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
			got, err := c.Render(lang, t.TempDir(), date)
			if err != nil {
				t.Fatal(err)
			}
			want, err := zero.Render(lang, t.TempDir(), date)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				g, w := read(t, got[i]), read(t, want[i])
				if g != w {
					t.Errorf("%s %s with listening off differs from a zero [listen]:\n%s\nwant\n%s", lang, got[i], g, w)
				}
				for _, s := range []string{"大きな声", "raised voice", "副店長"} {
					if strings.Contains(g, s) {
						t.Errorf("%s %s with listening off says %q", lang, got[i], s)
					}
				}
			}
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
