package hardware

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestSimIndicator(t *testing.T) {
	var out bytes.Buffer
	s := &Sim{Out: &out}
	if err := s.Set(true); err != nil {
		t.Fatal(err)
	}
	if lit, err := s.Lit(); !lit || err != nil {
		t.Errorf("Lit() = %v, %v; want true, nil", lit, err)
	}
	if !strings.Contains(out.String(), "REC") {
		t.Errorf("terminal shows %q, want the REC indicator", out.String())
	}
	s.Fail(errors.New("driver gone"))
	if err := s.Set(true); !errors.Is(err, ErrIndicatorFault) {
		t.Errorf("Set on a failed indicator = %v, want ErrIndicatorFault", err)
	}
	if lit, err := s.Lit(); lit || err == nil {
		t.Errorf("Lit() on a failed indicator = %v, %v; want false and an error", lit, err)
	}
	s.Fail(nil)
	if err := s.Halt(); err != nil {
		t.Fatal(err)
	}
	if lit, _ := s.Lit(); lit {
		t.Error("indicator lit after Halt")
	}
}

func TestSimButton(t *testing.T) {
	pr, pw := io.Pipe()
	fixed := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	s := &Sim{In: pr, Clock: clockwork.NewFakeClockAt(fixed)}
	ctx, cancel := context.WithCancel(context.Background())
	presses := make(chan Press)
	done := make(chan error)
	go func() { done <- s.Run(ctx, presses) }()
	for range 2 {
		go pw.Write([]byte("\n"))
		p := <-presses
		if p.Source != "sim" || !p.Time.Equal(fixed) {
			t.Errorf("press = %+v, want source sim at %v", p, fixed)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	pw.Close()
}
