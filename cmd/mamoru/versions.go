package main

import (
	"context"
	"fmt"
	"io"

	"mamoru/bucket"
)

// untouched reports whether every object of the incident e was written
// once: a device writes each once (If-None-Match), so another version is
// an overwrite or a deletion by someone else, reported as tampering with
// when each version was written. A listing that fails is a failure too:
// what cannot be checked is not verified.
func untouched(ctx context.Context, c bucket.Clips, e bucket.Entry, id string, stderr io.Writer) bool {
	vs, err := c.Versions(ctx, e)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips verify: %s: cannot list the versions of its objects, so an overwrite cannot be ruled out: %v\n", id, err)
		return false
	}
	tampered := bucket.CheckVersions(vs)
	for _, t := range tampered {
		fmt.Fprintf(stderr, "mamoru clips verify: %s: %v\n", id, t)
	}
	return len(tampered) == 0
}
