package access

import (
	"bytes"
	"context"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// phoneFrame shows login.html in a frame 390 px wide (a phone; headless
// Chromium lays out no window narrower than 500 px) and paints a square
// at its top left green if the page fits that width without scrolling
// sideways, red if not; it stays blue if the check never ran.
const phoneFrame = `<!doctype html>
<body style="margin:0">
<div id="fit" style="position:fixed;left:0;top:0;width:20px;height:20px;background:rgb(0,0,200)"></div>
<iframe id="page" src="login.html" style="width:390px;height:844px;border:0;margin-top:20px"></iframe>
<script>
const page = document.getElementById("page");
page.onload = () => {
	const d = page.contentDocument.documentElement;
	document.getElementById("fit").style.background = d.scrollWidth <= 390 && d.clientWidth === 390 ? "rgb(0,200,0)" : "rgb(200,0,0)";
};
</script>
</body>`

// The login page fits a 390 px phone screen: headless Chromium draws it
// at that width and the page does not scroll sideways. Without chromium
// the test is skipped, except in CI, which installs it.
func TestAccessLoginPageAtPhoneWidth(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (apt-get install chromium)")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	w := httptest.NewRecorder()
	render(w, 401, loginView{Name: "tanaka@shibuya-1.example", Next: "/", Error: "名前かパスワードが違います。", ErrorEn: "Wrong name or password."})
	dir := t.TempDir()
	shot := filepath.Join(dir, "login.png")
	if err := os.WriteFile(filepath.Join(dir, "login.html"), w.Body.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "phone.html"), []byte(phoneFrame), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--allow-file-access-from-files", "--hide-scrollbars", "--window-size=500,900", "--screenshot="+shot, "file://"+filepath.Join(dir, "phone.html"))
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("chromium's screenshot: %v", err)
	}
	if r, g, b, _ := img.At(5, 5).RGBA(); g < 0x8000 || r > 0x4000 || b > 0x4000 {
		t.Errorf("the page at 390 px: marker %v; want green, the page fitting the width (red: it scrolls sideways; blue: the check did not run)", img.At(5, 5))
	}
	if dir := os.Getenv("MAMORU_SCREENSHOTS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "console-login.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
