package natstest

import (
	"os"
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel SIGKILL the server if the test
// process dies without stopping it.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
