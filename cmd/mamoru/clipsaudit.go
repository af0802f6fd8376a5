package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"mamoru/config"
)

const clipsAuditHelp = `Usage: mamoru clips audit STORE/DEVICE [--pubkey KEY] [--config FILE]

Checks the audit log a device uploaded (segments under
<prefix>/STORE/DEVICE/audit/) against itself and against the heads its
signed manifests recorded: every segment signed by a key the keyring
holds for the device (or by KEY alone, as 'mamoru provision' printed it,
or a file holding it) and what its name says; the entries of each chain all there (GAP), each following the
one before and never two different ones under one number (REPLACED); each
manifest's head in the uploaded log (CUT: beyond its end; REPLACED:
another entry there); a log that began again (RESTARTED); and the
indicator lit whenever capture ran. Exit 1 on any of these.

A segment the device has not yet sent (it sends after each incident and
every 10 minutes) shows as CUT against a manifest sealed just before.`

func clipsAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var pubkey string
	c, loc, rest, code, ok := managerCommand("clips audit", clipsAuditHelp, args, stderr, func(fs *flag.FlagSet) {
		pubkeyFlag(fs, &pubkey)
	})
	if !ok {
		return code
	}
	if len(rest) != 1 {
		fmt.Fprintf(stderr, "mamoru clips audit: want one STORE/DEVICE\n\n%s\n", clipsAuditHelp)
		return 2
	}
	store, device, found := strings.Cut(rest[0], "/")
	if !found || !config.ValidName(store) || !config.ValidName(device) {
		fmt.Fprintf(stderr, "mamoru clips audit: %q is not STORE/DEVICE (letters, digits, '.', '_', '-')\n", rest[0])
		return 2
	}
	if !useKey("audit", pubkey, &c, stderr) {
		return 2
	}
	r, err := c.Audit(ctx, store, device)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips audit: %s/%s: %v\n", store, device, err)
		return 1
	}
	for _, ch := range r.Chains {
		fmt.Fprintf(stdout, "chain %s: %d entries (to entry %d) in %d segments, %s to %s\n", ch.Name, ch.Entries, ch.Last, ch.Segments,
			ch.From.In(loc).Format(time.DateTime), ch.To.In(loc).Format(time.DateTime))
	}
	fmt.Fprintf(stdout, "%d signed manifests' audit heads checked\n", r.Heads)
	if len(r.Problems) > 0 {
		for _, p := range r.Problems {
			fmt.Fprintf(stderr, "mamoru clips audit: %s/%s: %s\n", store, device, printable(p.Error()))
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s/%s: the uploaded audit log is whole, signed, and holds every manifest's head\n", store, device)
	return 0
}
