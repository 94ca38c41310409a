package natstest

import (
	"os/exec"
	"runtime"
	"sync"
)

// starter runs every cmd.Start on one goroutine locked to its OS thread
// for the life of the test process. On Linux the child is killed when the
// thread that started it exits (Pdeathsig, see proc_linux.go); a thread
// that never exits before the process makes that mean "when the test
// process dies", so a crashed or timed-out test leaves no server behind.
var (
	starterOnce sync.Once
	starts      chan startReq
)

type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startProcess(cmd *exec.Cmd) error {
	starterOnce.Do(func() {
		starts = make(chan startReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread stays ours
			for r := range starts {
				r.done <- r.cmd.Start()
			}
		}()
	})
	setParentDeathSignal(cmd)
	r := startReq{cmd: cmd, done: make(chan error, 1)}
	starts <- r
	return <-r.done
}
