package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// What the pipeline benchmark reads from Linux's /proc about the
// processes under test: CPU time, resident and proportional memory.

// clockTicks is USER_HZ, the unit of CPU times in /proc/PID/stat: 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// procRoot is where /proc is; tests point it elsewhere.
type procfs struct{ root string }

var defaultProc = procfs{root: "/proc"}

// stat returns a process's parent and its CPU times (user+system) of its
// own and of its children that it waited for.
func (p procfs) stat(pid int) (ppid int, self, children time.Duration, err error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime..cstime fields 14-17.
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	n := make([]int64, 5)
	for k, idx := range []int{1, 11, 12, 13, 14} {
		if n[k], err = strconv.ParseInt(f[idx], 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	tick := func(t int64) time.Duration { return time.Duration(t) * time.Second / clockTicks }
	return int(n[0]), tick(n[1] + n[2]), tick(n[3] + n[4]), nil
}

// memory returns a process's resident set and proportional set sizes in
// bytes (smaps_rollup; PSS shares each shared page among the processes
// that map it, so the PSS of a group of processes adds up honestly).
func (p procfs) memory(pid int) (rss, pss int64, err error) {
	f, err := os.Open(filepath.Join(p.root, strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "Rss" && name != "Pss") {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/smaps_rollup: %w", pid, err)
		}
		if name == "Rss" {
			rss = kb << 10
		} else {
			pss = kb << 10
		}
	}
	return rss, pss, sc.Err()
}

// descendants are every live process below pid.
func (p procfs) descendants(pid int) ([]int, error) {
	entries, err := os.ReadDir(p.root)
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, _, _, err := p.stat(child)
		if err != nil {
			continue // gone meanwhile
		}
		children[ppid] = append(children[ppid], child)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		c := children[queue[0]]
		queue = queue[1:]
		out = append(out, c...)
		queue = append(queue, c...)
	}
	return out, nil
}

// usage is what a group of processes used at one moment.
type usage struct {
	CPU      time.Duration // user+system, the group's processes and the children they reaped
	RSS, PSS int64         // bytes, summed over the group
}

// group is processes measured together: roots and, with tree, everything
// below them (PostgreSQL's postmaster and its backends).
type group struct {
	roots []int
	tree  bool
}

// sample reads the group's usage now. A process of the tree that exits
// between listing and reading is skipped (its CPU time moves into its
// parent's reaped children when the parent waits for it).
func (p procfs) sample(g group, withMemory bool) (usage, error) {
	var u usage
	for _, root := range g.roots {
		pids := []int{root}
		if g.tree {
			d, err := p.descendants(root)
			if err != nil {
				return u, err
			}
			pids = append(pids, d...)
		}
		for i, pid := range pids {
			_, self, children, err := p.stat(pid)
			if err != nil {
				if i == 0 {
					return u, fmt.Errorf("process %d: %w", pid, err)
				}
				continue
			}
			u.CPU += self
			if i == 0 {
				u.CPU += children // a root's reaped children belong to the group
			}
			if withMemory {
				rss, pss, err := p.memory(pid)
				if err != nil {
					if i == 0 {
						return u, fmt.Errorf("process %d: %w", pid, err)
					}
					continue
				}
				u.RSS += rss
				u.PSS += pss
			}
		}
	}
	return u, nil
}

// loadAverage is the 1-minute load average, or -1 if unknown.
func (p procfs) loadAverage() float64 {
	b, err := os.ReadFile(filepath.Join(p.root, "loadavg"))
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func selfPID() int { return os.Getpid() }

// machineBusy is the CPU time every process of the machine has used so
// far (all of /proc/stat's cpu line but idle and iowait; guest time is
// already in user).
func (p procfs) machineBusy() (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(p.root, "stat"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: no cpu line")
	}
	var busy int64
	// user nice system idle iowait irq softirq steal [guest guest_nice]
	for i, s := range f[1:min(len(f), 9)] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}
