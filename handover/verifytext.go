package handover

import (
	"fmt"
	"strings"
)

// CommandPrefix starts each line of VERIFY.txt that is a command to run,
// as it is to be typed after it.
const CommandPrefix = "$ "

// VerifyText is VERIFY.txt: in Japanese and English, how to check the
// package with standard tools only (coreutils' sha256sum and base64,
// OpenSSL 3), each command on a line of its own after CommandPrefix, run
// in the folder the zip was unpacked into; and what each check proves.
// signed says the package holds manifest.sig, hasKey the device's key.
func VerifyText(r Report, signed, hasKey bool) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	cmd := func(c string) { line("%s%s", CommandPrefix, c) }
	m := r.Manifest
	line("この引き渡しパッケージの確かめ方 / How to check this hand-over package")
	line("")
	line("事案 / Incident: %s (store %s, device %s)", m.Incident, m.Store, m.Device)
	line("")
	line("zip を展開したフォルダで、次のコマンドを順に実行してください。使うのは標準的なツール")
	line("（coreutils の sha256sum と base64、OpenSSL 3）だけです。mamoru は要りません。")
	line("Run these commands, in order, in the folder the zip was unpacked into. They use")
	line("standard tools only (coreutils' sha256sum and base64, OpenSSL 3), not mamoru.")
	line("")
	line("1. ファイルが一覧どおりであること / The files are those listed")
	line("")
	cmd("sha256sum -c " + SumsFile)
	line("")
	line("   すべての行が「OK」で終わること。これが示すのは、ファイルが %s の一覧どおりだという", SumsFile)
	line("   ことだけです。%s 自体は装置の署名を受けていないので、誰でもファイルと一緒に", SumsFile)
	line("   書き換えられます。本物であることは 2 と 3 で確かめます。")
	line("   Every line must end in \"OK\". This shows only that the files are those %s", SumsFile)
	line("   lists: %s itself is not signed by the device, and anyone could rewrite it", SumsFile)
	line("   with the files. Steps 2 and 3 are what show the clip is authentic.")
	line("")
	line("2. 装置が manifest.json に署名したこと / The device signed manifest.json")
	line("")
	switch {
	case !signed:
		line("   UNSIGNED: このパッケージには manifest.sig がありません。装置の署名はなく、")
		line("   このクリップが本物であることを確かめる方法はありません。")
		line("   UNSIGNED: this package holds no manifest.sig. The device did not sign it, and")
		line("   nothing here can show the clip is authentic.")
	case !hasKey:
		line("   このパッケージには装置の公開鍵がありません（店舗の鍵の記録で署名を確かめられ")
		line("   ませんでした）。店舗から装置の公開鍵を受け取り、%s として置いてから次を実行します。", KeyFile)
		line("   This package holds no device key: the shop's keyring did not verify the")
		line("   signature. Obtain the device's public key from the shop, save it as")
		line("   %s, then run:", KeyFile)
	}
	if signed {
		if !hasKey {
			line("")
		}
		line("   manifest.sig は ed25519 署名の base64 テキストです。openssl にはその 64 バイト")
		line("   そのものを渡すので、先に復号します。")
		line("   manifest.sig holds the ed25519 signature as base64 text; openssl takes its")
		line("   64 raw bytes, so decode it first:")
		line("")
		cmd("base64 -d manifest.sig > manifest.sig.bin")
		cmd("openssl pkeyutl -verify -pubin -inkey " + KeyFile + " -rawin -in manifest.json -sigfile manifest.sig.bin")
		line("")
		line("   「Signature Verified Successfully」と表示されること。")
		line("   It must print \"Signature Verified Successfully\".")
		line("")
		line("   署名された manifest.json には clip.mp4 の SHA-256 が記録されています。次の 2 行の")
		line("   値が同じであること（1 の検査で clip.mp4 が一覧どおりであることも確かめています）。")
		line("   The signed manifest.json records clip.mp4's SHA-256. The two values these")
		line("   print must be equal:")
		line("")
		cmd("grep '\"sha256\"' manifest.json")
		cmd("sha256sum clip.mp4")
	}
	line("")
	line("3. 鍵が店舗の装置の鍵であること / The key is the shop's key for this device")
	line("")
	cmd("openssl pkey -pubin -in " + KeyFile + " -outform DER | sha256sum")
	line("")
	if r.Key.Fingerprint != "" {
		line("   表示される値 / It prints:")
		line("   %s  -", r.Key.Fingerprint)
		line("")
	}
	line("   この値が、店舗がこのパッケージとは別に保管している記録（装置の設置時に")
	line("   `mamoru provision` が表示した fingerprint）と一致すること。店舗に問い合わせて")
	line("   照合してください。")
	line("   The value must equal the fingerprint the shop keeps apart from this package")
	line("   (the one `mamoru provision` printed when the device was set up). Ask the shop")
	line("   for it and compare.")
	line("")
	line("何が何を証明するか / What proves what")
	line("")
	line("   このパッケージのファイル（%s、%s、%s、視聴用コピー）は装置の", SumsFile, ReportFile, VerifyFile)
	line("   署名を受けていません。本物であることの根拠は、装置による manifest.json への署名")
	line("   （2）と、その鍵の fingerprint が店舗の記録と一致すること（3）だけです。")
	line("   manifest.json には clip.mp4 の SHA-256 が含まれるため、署名はクリップにも及びます。")
	line("   The package's own files (%s, %s, %s, the viewing copy) are not", SumsFile, ReportFile, VerifyFile)
	line("   signed by the device. Authenticity rests on the device's signature over")
	line("   manifest.json (step 2) and on the key's fingerprint matching the shop's own")
	line("   record (step 3) alone. manifest.json holds clip.mp4's SHA-256, so the")
	line("   signature covers the clip too.")
	line("")
	line("   %s は %s から作った派生物で、原本ではありません。映像は原本と同じバイト、", ViewingCopyFile, "clip.mp4")
	line("   音声は原本と同じサンプルに復号されます（`mamoru clips viewing-copy clip.mp4 -o")
	line("   %s` で同じバイトのものを再現できます）。", ViewingCopyFile)
	line("   %s is derived from clip.mp4, not the original: its video is the", ViewingCopyFile)
	line("   original's bytes and its sound decodes to the original's samples; `mamoru")
	line("   clips viewing-copy clip.mp4 -o %s` reproduces it byte for byte.", ViewingCopyFile)
	return b.String()
}
