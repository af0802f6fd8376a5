package main

import (
	"fmt"
	"io"
	"time"
)

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := command("check", "Usage: mamoru check --config FILE\n\nLoads and validates the configuration, as 'mamoru run' would, and says\nwhat it sets up. Exit status 2 names the key at fault.", args, stderr, nil)
	if !ok {
		return code
	}
	storage := "clips stay on the device"
	if cfg.Storage.Enabled() {
		storage = fmt.Sprintf("uploads to bucket %s at %s", cfg.Storage.Bucket, cfg.Storage.Endpoint)
	}
	fmt.Fprintf(stdout, "configuration OK: device %s in store %s, hardware %s, video %v, audio %v; %s; recording hours: %s\n",
		cfg.Device.ID, cfg.Device.Store, cfg.Hardware.Driver, cfg.Video.Enabled, cfg.Audio.Enabled, storage, cfg.Schedule().Describe(time.Now()))
	return 0
}
