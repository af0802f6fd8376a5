package device

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"mamoru/audit"
	"mamoru/capture"
	"mamoru/capture/mp4"
	"mamoru/config"
	"mamoru/outbox"
)

// recoverIncidents looks at every incident directory the last run left.
// A clip whose recording never finished (power cut, SIGKILL) is cut after
// its last complete fragment and finalized; a directory that cannot be made
// sense of is moved aside and reported. Neither stops the recorder.
func (ru *run) recoverIncidents() {
	entries, err := os.ReadDir(ru.outbox.Dir)
	if err != nil {
		ru.log.Error("cannot read incidents", "err", err)
		return
	}
	for _, e := range entries {
		if !e.IsDir() || e.Name()[0] == '.' {
			continue
		}
		dir := filepath.Join(ru.outbox.Dir, e.Name())
		m, err := outbox.ReadManifest(dir)
		if err == nil && m.State != outbox.StateRecording {
			continue
		}
		if err != nil {
			// The manifest is written before the clip, so a directory
			// without one holds nothing worth keeping in place.
			ru.putAside(dir, err, nil)
			continue
		}
		if ru.r.Interrupted != nil {
			ru.r.Interrupted(m)
		}
		if err := recoverClip(dir, &m, ru.r.Config.Audio, "the recorder stopped while recording (power cut or crash)", ru.r.auditHead()); err != nil {
			// The press was made (its manifest says so) though nothing of
			// its clip can be used: kept aside, and said with its press.
			ru.putAside(dir, err, &m)
			continue
		}
		ru.log.Warn("recovered an incident cut short", "id", m.Incident, "seconds", fmt.Sprintf("%.1f", m.DurationSeconds))
		ru.emit(Event{Kind: EventIncident, Incident: m.Incident, State: m.State, SHA256: m.Clip.SHA256, Manifest: &m})
	}
}

// recoverClip cuts an unfinished clip after its last complete fragment,
// finalizes it and writes its manifest in state recovered, saying why, with
// the audit log's head.
func recoverClip(dir string, m *outbox.Manifest, audio config.Audio, why string, head *audit.Head) error {
	f, err := os.OpenFile(filepath.Join(dir, outbox.ClipFile), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	info, err := mp4.Recover(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("recover clip: %w", err)
	}
	m.State = outbox.StateRecovered
	p := capture.ClipParams{}
	if info.Audio.Samples > 0 {
		p.Audio = &capture.AudioFormat{SampleRate: audio.SampleRate, Channels: audio.Channels}
	}
	describe(m, info, p)
	m.ClipEnd = m.ClipStart.Add(info.Duration)
	m.Notes = append(m.Notes, why+"; the clip ends at its last complete fragment")
	if err := digest(dir, m); err != nil {
		return err
	}
	m.AuditHead = head
	return outbox.WriteManifest(dir, *m)
}

// putAside moves a directory the recorder cannot use out of the outbox, so
// it is kept for a person to look at and never blocks anything. m is its
// manifest, when it has a readable one.
func (ru *run) putAside(dir string, why error, m *outbox.Manifest) {
	aside := filepath.Join(ru.outbox.Dir, setAsideDir)
	os.MkdirAll(aside, 0o750)
	to := filepath.Join(aside, filepath.Base(dir))
	for i := 2; ; i++ {
		if _, err := os.Lstat(to); errors.Is(err, os.ErrNotExist) {
			break
		}
		to = filepath.Join(aside, fmt.Sprintf("%s.%d", filepath.Base(dir), i))
	}
	if err := os.Rename(dir, to); err != nil {
		ru.log.Error("cannot set aside a broken incident", "dir", dir, "err", err)
		return
	}
	ru.log.Error("incident directory set aside", "dir", dir, "moved_to", to, "why", why)
	ru.emit(Event{Kind: EventSetAside, Dir: filepath.Base(dir), Err: why, Manifest: m})
}
