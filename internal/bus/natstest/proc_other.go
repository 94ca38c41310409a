//go:build !unix

package natstest

import (
	"errors"
	"os"
	"os/exec"
)

func setParentDeathSignal(*exec.Cmd) {}

// terminate cannot signal here; Stop kills instead.
func terminate(*os.Process) error { return errors.New("no SIGTERM on this system") }
