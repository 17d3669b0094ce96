//go:build !linux

package main

import (
	"io"

	"github.com/kardianos/service"
)

// prepareSystemd: systemd is Linux's.
func prepareSystemd(*service.Config, fileConfig, string, io.Writer) error { return nil }
