//go:build unix && !linux

package natstest

import (
	"os"
	"os/exec"
	"syscall"
)

func setParentDeathSignal(*exec.Cmd) {}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
