package device

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"mamoru/audit"
	"mamoru/outbox"
	"mamoru/uploader"
)

// AuditCheck is what CheckAudit found in a state directory.
type AuditCheck struct {
	Path    string // the audit log
	Entries int    // its entries, if its chain holds
	// Heads is how many heads were checked against the log: one for each
	// sealed manifest the outbox still holds.
	Heads int
	// SetAside are the logs kept aside because their chain was broken,
	// each with what is known of it.
	SetAside []string
	// Problems are what is wrong: no log, a broken chain, capture with the
	// indicator off, a head the log does not hold (cut or replaced), a log
	// the chain says was set aside and is not there. Any
	// one means the log cannot be relied on as it stands.
	Problems []error
}

// OK reports whether the log can be relied on: no problem and no log set
// aside (whose history the current chain does not carry).
func (c AuditCheck) OK() bool { return len(c.Problems) == 0 && len(c.SetAside) == 0 }

// CheckAudit checks the audit log in stateDir: its chain, that it shows
// the indicator lit whenever capture ran, and that it holds the head each
// sealed manifest in the outbox recorded, and the last entry uploaded
// (uploader.AuditProgress). It reads only the card, so it shows a log cut
// or replaced after one of those anchors was written by someone who left
// the anchors alone: whoever can rewrite the log on the card can rewrite
// them too. The segments and manifests in the bucket, beyond the card's
// reach, are the stronger anchor (clips audit).
func CheckAudit(stateDir string) AuditCheck {
	c := AuditCheck{Path: filepath.Join(stateDir, auditFile)}
	// The heads are checked against the entries up to any break.
	entries, err := intact(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		// The recorder makes the log as it starts: none is no history at
		// all, not a clean one.
		c.Problems = append(c.Problems, fmt.Errorf("no audit log at %s: it was removed, or the recorder never ran here", c.Path))
	} else {
		if err == nil {
			c.Entries = len(entries)
			err = audit.CheckInterlock(entries)
		}
		if _, verr := audit.Verify(c.Path); verr != nil {
			err = verr
		}
		if err != nil {
			c.Problems = append(c.Problems, fmt.Errorf("%s: %w", c.Path, err))
		}
	}
	// A log set aside is evidence the current chain vouches for by name:
	// one gone is history removed.
	for _, e := range entries {
		if kept := e.Fields["kept"]; e.Event == string(EventAuditBroken) && kept != "" {
			p := filepath.Join(stateDir, filepath.Base(kept))
			if _, err := os.Stat(p); err != nil {
				c.Problems = append(c.Problems, fmt.Errorf("entry %d set the broken log aside as %s, and it is gone: %w", e.Seq, p, err))
			}
		}
	}

	aside, _ := filepath.Glob(c.Path + ".broken-*")
	slices.Sort(aside)
	kept := map[string][]audit.Entry{} // each set-aside log's intact entries
	for _, p := range aside {
		es, err := intact(p)
		kept[p] = es
		what := fmt.Sprintf("%s: set aside with its chain broken; %d entries intact before the break", p, len(es))
		if err != nil && !errors.Is(err, audit.ErrChain) {
			what = fmt.Sprintf("%s: set aside with its chain broken; cannot be read: %v", p, err)
		}
		c.SetAside = append(c.SetAside, what)
	}

	// The uploads' progress is a local anchor too: the log held that entry
	// when it was sent.
	if p, err := uploader.ReadAuditProgress(c.Path); err != nil {
		c.Problems = append(c.Problems, err)
	} else if p.Hash != "" {
		holds := func(es []audit.Entry) bool {
			return len(es) > 0 && audit.Chain(es[0]) == p.Chain && audit.CheckHead(es, p.Head) == nil
		}
		if !holds(entries) && !slices.ContainsFunc(aside, func(a string) bool { return holds(kept[a]) }) {
			herr := audit.CheckHead(entries, p.Head)
			if herr == nil {
				herr = fmt.Errorf("%w: the log is another chain than %s", audit.ErrReplaced, p.Chain)
			}
			c.Problems = append(c.Problems, fmt.Errorf("entry %d was uploaded (%s), and the log no longer holds it: %w", p.Seq, uploader.AuditProgressPath(c.Path), herr))
		}
	}

	incidents, _, err := Outbox(stateDir).List()
	if err != nil {
		c.Problems = append(c.Problems, err)
	}
	for _, in := range incidents {
		h := in.Manifest.AuditHead
		if h == nil {
			continue
		}
		c.Heads++
		herr := audit.CheckHead(entries, *h)
		if herr == nil {
			continue
		}
		// A head sealed before the log was set aside is in the log kept.
		if p := slices.IndexFunc(aside, func(p string) bool { return audit.CheckHead(kept[p], *h) == nil }); p >= 0 {
			continue
		}
		c.Problems = append(c.Problems, fmt.Errorf("incident %s (%s) recorded the log's head at entry %d: %w", in.Manifest.Incident,
			filepath.Join(in.Dir, outbox.ManifestFile), h.Seq, herr))
	}
	return c
}

// intact returns a log's entries up to any break in its chain.
func intact(path string) ([]audit.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var es []audit.Entry
	err = audit.Walk(f, func(e audit.Entry, _ []byte) error { es = append(es, e); return nil })
	return es, err
}

// String says what the check found, one line each.
func (c AuditCheck) String() string {
	var b strings.Builder
	if len(c.Problems) == 0 {
		fmt.Fprintf(&b, "%s: %d entries, hash chain intact, the indicator lit whenever capture ran; holds the heads of %d manifests\n", c.Path, c.Entries, c.Heads)
	}
	for _, p := range c.Problems {
		fmt.Fprintf(&b, "PROBLEM: %v\n", p)
	}
	for _, s := range c.SetAside {
		fmt.Fprintf(&b, "SET ASIDE: %s\n", s)
	}
	return b.String()
}
