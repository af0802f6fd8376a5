package main

import (
	"flag"
	"fmt"
	"io"
	"time"
)

const policyHelp = `Usage: mamoru policy render --config FILE --lang ja|en --out DIR

Writes the operating rules (運用ルール, operating-rules.html) and the A4 store
notice (店頭掲示, notice.html) into DIR, from the very configuration the device
runs: what is recorded, the recording hours, the retention, the operator and
the contact. Print them from a browser. Needs policy.operator_name and
policy.contact.`

func cmdPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "render" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			fmt.Fprintln(stdout, policyHelp)
			return 0
		}
		fmt.Fprintln(stderr, policyHelp)
		return 2
	}
	var lang, out string
	cfg, code, ok := commandWithoutSecrets("policy render", policyHelp, args[1:], stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&lang, "lang", "ja", "language: ja or en")
		fs.StringVar(&out, "out", ".", "write into `DIR`")
	})
	if !ok {
		return code
	}
	files, err := cfg.Render(lang, out, time.Now().In(cfg.Location()))
	if err != nil {
		fmt.Fprintf(stderr, "mamoru policy render: %v\n", err)
		return 2
	}
	for _, f := range files {
		fmt.Fprintln(stdout, f)
	}
	return 0
}
