package loadgen

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// fakeProc writes a /proc with the given processes.
type fakeProcess struct {
	pid, ppid                    int
	comm                         string
	utime, stime, cutime, cstime int64 // ticks
	rssKB, pssKB                 int64
}

func fakeProc(t *testing.T, ps ...fakeProcess) procfs {
	t.Helper()
	root := t.TempDir()
	for _, p := range ps {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Fields 1-17 as the kernel writes them, then some more.
		stat := fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 100 0 0 0 %d %d %d %d 20 0 8 0 1234 5678 90 18446744073709551615\n",
			p.pid, p.comm, p.ppid, p.pid, p.pid, p.utime, p.stime, p.cutime, p.cstime)
		smaps := fmt.Sprintf("00400000-7fff0000 ---p 00000000 00:00 0 [rollup]\nRss: %d kB\nPss: %d kB\nPss_Anon: 1 kB\nShared_Clean: 3 kB\n", p.rssKB, p.pssKB)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "smaps_rollup"), []byte(smaps), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "loadavg"), []byte("7.25 6.10 5.00 3/900 4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// user nice system idle iowait irq softirq steal guest guest_nice
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte("cpu  100 20 30 400 50 5 5 1 70 0\ncpu0 50 10 15 200 25 2 3 0 35 0\nintr 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "self"), 0o755); err != nil { // not a pid: skipped
		t.Fatal(err)
	}
	return procfs{root: root}
}

func TestProcGroups(t *testing.T) {
	t.Parallel()
	p := fakeProc(t,
		fakeProcess{pid: 1, ppid: 0, comm: "init", utime: 1000},
		// A command name with spaces and parentheses.
		fakeProcess{pid: 10, ppid: 1, comm: "yolda (serve) x", utime: 150, stime: 50, cutime: 7, rssKB: 2048, pssKB: 1024},
		fakeProcess{pid: 20, ppid: 1, comm: "postgres", utime: 10, stime: 10, cutime: 100, cstime: 100, rssKB: 1000, pssKB: 500},
		fakeProcess{pid: 21, ppid: 20, comm: "postgres: yolda yolda 127.0.0.1(5000) idle", utime: 30, stime: 20, cutime: 999, rssKB: 800, pssKB: 300},
		fakeProcess{pid: 22, ppid: 20, comm: "postgres: walwriter", utime: 5, stime: 5, rssKB: 100, pssKB: 50},
		fakeProcess{pid: 23, ppid: 21, comm: "postgres: parallel worker", utime: 1, stime: 1, pssKB: 10},
	)

	server, err := p.sample(group{roots: []int{10}}, true)
	if err != nil {
		t.Fatal(err)
	}
	// A root's own time and the children it reaped; 100 ticks a second.
	if want := 2070 * time.Millisecond; server.CPU != want || server.RSS != 2048<<10 || server.PSS != 1024<<10 {
		t.Errorf("server %+v, want CPU %v, RSS 2 MiB, PSS 1 MiB", server, want)
	}

	pg, err := p.sample(group{roots: []int{20}, tree: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	// postmaster 20+200 reaped, backends 50 + 10 + 2 (their own reaped
	// children are already in their parent's count or still alive).
	if want := 2820 * time.Millisecond; pg.CPU != want {
		t.Errorf("postgres CPU %v, want %v", pg.CPU, want)
	}
	if want := int64(500+300+50+10) << 10; pg.PSS != want {
		t.Errorf("postgres PSS %d, want %d", pg.PSS, want)
	}

	if _, err := p.sample(group{roots: []int{99}}, false); err == nil {
		t.Error("a missing root: no error")
	}
	// Everything but idle and iowait; guest time is already in user.
	if got, err := p.machineBusy(); err != nil || got != 1610*time.Millisecond {
		t.Errorf("machine busy %v (%v), want 1.61s", got, err)
	}
	if got := p.loadAverage(); got != 7.25 {
		t.Errorf("load average %v, want 7.25", got)
	}
}

// The real /proc: this process is there and uses some CPU and memory.
func TestProcSelf(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		t.Skip("no /proc/self/smaps_rollup (not Linux 4.14+)")
	}
	u, err := defaultProc.sample(group{roots: []int{os.Getpid()}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS <= 0 || u.PSS <= 0 || u.PSS > u.RSS {
		t.Errorf("self RSS %d PSS %d: want 0 < PSS <= RSS", u.RSS, u.PSS)
	}
}
