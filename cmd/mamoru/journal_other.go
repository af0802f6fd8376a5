//go:build !unix

package main

import "io"

// toJournal is false: there is no journald here.
func toJournal(io.Writer) bool { return false }
