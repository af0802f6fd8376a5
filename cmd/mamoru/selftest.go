package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"mamoru/clock"
	"mamoru/config"
	"mamoru/hardware"
	"mamoru/selftest"
)

const selftestHelp = `Usage: mamoru selftest --config FILE [--quick]

Checks the device for an installer and prints a pass/fail table: it blinks
the indicator and asks you to confirm, waits 30 s for a press of the
button, shows a microphone level meter for 5 s, grabs camera frames and
reports their rate and size, checks that NTP has set the clock, and writes
and deletes a test object in storage. --quick skips the two steps that need
a person at the counter. Stop 'mamoru run' first: the self-test needs the
camera, the microphone and the pins. Exit status 1 if any check fails.`

func cmdSelftest(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var quick bool
	cfg, code, ok := command("selftest", selftestHelp, args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&quick, "quick", false, "skip the steps that need a person at the counter")
	})
	if !ok {
		return code
	}
	in := bufio.NewReader(stdin)
	st := &selftest.Test{Config: cfg, In: in, Out: stdout, Quick: quick,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	switch cfg.Hardware.Driver {
	case config.DriverSim:
		sim := &hardware.Sim{In: in, Out: stdout}
		st.Indicator, st.Button = sim, sim
	case config.DriverGPIO:
		ind, btn, err := hardware.OpenGPIO(cfg.Hardware, clock.Real())
		if err != nil {
			fmt.Fprintf(stderr, "mamoru selftest: %v\n", err)
			return 1
		}
		defer ind.Halt()
		st.Indicator, st.Button = ind, btn
	}
	failed := 0
	for _, c := range st.Run(ctx) {
		if c.Result == "FAIL" {
			failed++
		}
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "\n%d check(s) FAILED: the device is not ready.\n", failed)
		return 1
	}
	fmt.Fprintln(stdout, "\nall checks passed.")
	return 0
}
